"""Checks that look at how steps connect: ids, edges, references between steps, cycles and for_each scopes.

The rules are described in :mod:`studio.model.validation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import networkx as nx

from studio.model.validation_findings import Finding, error, quote_list, suggestion, warning
from studio.model.validation_steps import FieldReference, StepAnalysis
from studio.model.workflow import AnyStep, Edge, ForEachStep, Workflow


@dataclass(eq=False)
class Scope:
    """One level of the workflow: the top level, or the body of one ``for_each`` step."""

    owner: ForEachStep | None
    parent: Scope | None
    steps: list[AnyStep]
    edges: list[Edge]
    path: str
    """Document path of the scope's step list, such as ``steps`` or ``steps[3].config.steps``."""
    ids: dict[str, None] = field(default_factory=dict)
    """The scope's step ids in document order (a dict used as an ordered set)."""
    origins: dict[tuple[str, str], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """Each dependency ``(source, target)`` with why it exists: ``("edge", "")`` or ``("reference", field
    path in the target)``."""
    analysis: ScopeGraph | None = None
    """Set by :func:`analyse_scope_graph` once every edge and reference has been added to ``origins``."""

    @property
    def graph(self) -> nx.DiGraph:
        assert self.analysis is not None, "analyse_scope_graph() must run first"
        return self.analysis.graph

    def signature(self) -> tuple[object, ...]:
        """Return everything the scope's graph checks depend on, as a hashable cache key."""
        owner = None if self.owner is None else self.owner.id
        return owner, tuple(self.ids), tuple(self.origins), tuple(self.origins.values())

    @property
    def label(self) -> str:
        return "the workflow" if self.owner is None else f"the body of for_each '{self.owner.id}'"

    def edge_finding_place(self, index: int) -> tuple[str | None, str]:
        """Return ``(step_id, field_path)`` of the ``index``-th explicit edge of this scope."""
        if self.owner is None:
            return None, f"edges[{index}]"
        return self.owner.id, f"config.edges[{index}]"


@dataclass(eq=False, slots=True)
class Site:
    """Location of a step: its scope, its index in the scope's step list and its position in document order."""

    step: AnyStep
    scope: Scope
    index: int
    order: int

    @property
    def path(self) -> str:
        return f"{self.scope.path}[{self.index}]"


@dataclass
class Layout:
    """The scopes and step sites of a workflow; a repeated id keeps its first site."""

    scopes: list[Scope]
    sites: dict[str, Site]
    findings: list[Finding]


def build_layout(workflow: Workflow) -> Layout:
    """Collect scopes and sites, reporting step ids used more than once anywhere in the workflow."""
    top = Scope(None, None, list(workflow.steps), list(workflow.edges), "steps")
    layout = Layout([top], {}, [])
    _collect(layout, top)
    return layout


def _collect(layout: Layout, scope: Scope) -> None:
    for index, step in enumerate(scope.steps):
        first = layout.sites.get(step.id)
        if first is None:
            layout.sites[step.id] = Site(step, scope, index, len(layout.sites))
        else:
            layout.findings.append(
                error(
                    "duplicate-id",
                    f"step id '{step.id}' is used by {first.path} and {scope.path}[{index}]; ids must be unique in the "
                    "whole workflow, including for_each bodies. Rename one of them.",
                    step.id,
                    "id",
                )
            )
        scope.ids[step.id] = None
        if isinstance(step, ForEachStep):
            body = Scope(step, scope, step.config.steps, step.config.edges, f"{scope.path}[{index}].config.steps")
            layout.scopes.append(body)
            _collect(layout, body)


def add_explicit_edges(scope: Scope, sites: Mapping[str, Site]) -> list[Finding]:
    """Add the scope's edges to its graph; report self-edges, dangling and duplicate edges."""
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for index, edge in enumerate(scope.edges):
        pair = (edge.source, edge.target)
        if pair not in seen and edge.source != edge.target and edge.source in scope.ids and edge.target in scope.ids:
            seen.add(pair)
            _link(scope, edge.source, edge.target, ("edge", ""))
            continue
        step_id, place = scope.edge_finding_place(index)
        if edge.source == edge.target:
            findings.append(
                error(
                    "self-edge",
                    f"edge {place} connects step '{edge.source}' to itself; a step cannot wait for itself. "
                    "Remove the edge.",
                    step_id,
                    place,
                )
            )
            continue
        missing = [end for end in pair if end not in scope.ids]
        if missing:
            findings.append(_dangling(scope, sites, edge, missing[0], step_id, place))
            continue
        findings.append(
            warning(
                "duplicate-edge",
                f"edge {place} from '{edge.source}' to '{edge.target}' is listed more than once; remove "
                "the repeated edge.",
                step_id,
                place,
            )
        )
    return findings


def _dangling(
    scope: Scope, sites: Mapping[str, Site], edge: Edge, end: str, step_id: str | None, place: str
) -> Finding:
    prefix = f"edge {place} from '{edge.source}' to '{edge.target}'"
    elsewhere = sites.get(end)
    if elsewhere is not None:
        message = (
            f"{prefix} leaves {scope.label}: '{end}' is in {elsewhere.scope.label}. Edges connect steps of the "
            "same level; remove the edge, or move the steps to the same level."
        )
    else:
        message = (
            f"{prefix} points at '{end}', which does not exist.{suggestion(end, scope.ids)} "
            "Fix the id or remove the edge."
        )
    return error("dangling-edge", message, step_id, place)


def _link(scope: Scope, source: str, target: str, origin: tuple[str, str]) -> None:
    pair = (source, target)
    scope.origins[pair] = (*scope.origins.get(pair, ()), origin)


@dataclass
class ReferenceContext:
    """Input names, used by the reference checks besides the layout."""

    input_names: frozenset[str]
    extra_inputs_allowed: bool


def add_references(
    layout: Layout, analyses: Mapping[str, StepAnalysis], context: ReferenceContext
) -> list[Finding]:
    """Check every reference and add the edges it implies to the graphs."""
    findings: list[Finding] = []
    for site in layout.sites.values():  # insertion order is document order
        for field_reference in analyses[site.step.id].references:
            finding = _check_reference(layout, site, field_reference, context)
            if finding is not None:
                findings.append(finding)
    return findings


def _check_reference(
    layout: Layout, site: Site, field_reference: FieldReference, context: ReferenceContext
) -> Finding | None:
    reference = field_reference.reference
    if reference.root in ("item", "index"):
        if site.scope.owner is None:
            return _reference_error(
                "item-outside-for-each",
                site,
                field_reference,
                "the step is not inside a for_each body, where {{item}} and {{index}} exist. Move the step "
                "into a for_each body or read the data with {{steps.<id>.result}}.",
            )
        return None
    if reference.root == "input":
        name = str(reference.path[0])
        if name in context.input_names or context.extra_inputs_allowed:
            return None
        return _reference_error(
            "unknown-input",
            site,
            field_reference,
            f"the input schema has no property '{name}'.{suggestion(name, context.input_names)} "
            f"Add '{name}' to the input schema's properties or fix the name.",
        )
    if reference.root != "steps" or reference.step_id is None:
        return None
    target = layout.sites.get(reference.step_id)
    if target is None:
        return _reference_error(
            "unknown-step-ref",
            site,
            field_reference,
            f"there is no step '{reference.step_id}'.{suggestion(reference.step_id, layout.sites)} "
            "Fix the id or add the step.",
        )
    return _check_step_read(site, field_reference, target, context)


def _check_step_read(
    site: Site, field_reference: FieldReference, target: Site, context: ReferenceContext
) -> Finding | None:
    if target.scope is site.scope:
        _link(site.scope, target.step.id, site.step.id, ("reference", field_reference.field_path))
        return None
    scope = site.scope
    while scope.owner is not None and scope.parent is not None:
        if scope.owner is target.step:
            return _reference_error(
                "for-each-scope",
                site,
                field_reference,
                f"'{target.step.id}' is the for_each whose body contains this step, and its result exists only "
                "after every item is done. Use {{item}} and {{index}} for the current item.",
            )
        if scope.parent is target.scope:
            # A body reading an outer step makes the enclosing for_each depend on that step, as any
            # reference does; the engine schedules it the same way.
            path = f"its body step '{site.step.id}' ({field_reference.field_path})"
            _link(target.scope, target.step.id, scope.owner.id, ("reference", path))
            return None
        scope = scope.parent
    gate = _outermost_hidden_owner(site, target)
    if gate is site.step:
        detail = f"the items of for_each '{gate.id}' cannot come from its own body"
    else:
        detail = (
            f"'{target.step.id}' is inside the body of for_each '{gate.id}', and steps outside that body read "
            f"its results through {{{{steps.{gate.id}.result.items}}}}"
        )
    return _reference_error(
        "for-each-scope",
        site,
        field_reference,
        f"{detail}. Read the for_each's result instead, or move the steps to the same level.",
    )


def _reference_error(code: str, site: Site, field_reference: FieldReference, problem: str) -> Finding:
    # Messages are built only here because most references are valid and re-validation visits them all.
    reference = field_reference.reference
    return error(
        code,
        f"step '{site.step.id}' reads {reference.describe()} in {field_reference.field_path}, but {problem}",
        site.step.id,
        field_reference.field_path,
    )


def _outermost_hidden_owner(site: Site, target: Site) -> ForEachStep:
    """Return the for_each whose body hides ``target`` from ``site``: the one in a scope ``site`` can see."""
    visible: list[Scope] = []
    scope: Scope | None = site.scope
    while scope is not None:
        visible.append(scope)
        scope = scope.parent
    body = target.scope
    while body.owner is not None and body.parent is not None:
        if any(body.parent is seen for seen in visible):
            return body.owner
        body = body.parent
    raise AssertionError("a step outside the top level always has an enclosing for_each")


@dataclass
class ScopeGraph:
    """The graph of one scope and the findings derived from it alone, reusable while its signature holds."""

    graph: nx.DiGraph
    findings: list[Finding]
    """Cycles, then disconnected groups."""
    ancestors: dict[str, set[str]] = field(default_factory=dict)
    """Ancestors of for_each steps, filled on first use."""

    def ancestors_of(self, step_id: str) -> set[str]:
        if step_id not in self.ancestors:
            self.ancestors[step_id] = nx.ancestors(self.graph, step_id) if self.graph.has_node(step_id) else set()
        return self.ancestors[step_id]


def analyse_scope_graph(scope: Scope) -> ScopeGraph:
    """Build the scope's graph in one bulk insertion and check it for cycles and disconnected groups."""
    graph = nx.DiGraph()
    graph.add_nodes_from(scope.ids)
    graph.add_edges_from(scope.origins)
    positions = {step_id: index for index, step_id in enumerate(scope.ids)}

    def order(step_id: str) -> int:
        return positions.get(step_id, len(positions))

    result = ScopeGraph(graph, [])
    scope.analysis = result
    result.findings.extend(check_cycles(scope, order))
    result.findings.extend(check_disconnected(scope, order))
    return result


def check_cycles(scope: Scope, order: Callable[[str], int]) -> list[Finding]:
    """Report one cycle, in order, per strongly connected group of steps."""
    findings: list[Finding] = []
    graph = scope.graph
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (node,) = component
            if not graph.has_edge(node, node):
                continue
        start = min(component, key=order)
        cycle = _cycle_through(graph, component, start, order)
        findings.append(_cycle_finding(scope, cycle))
    findings.sort(key=lambda finding: order(finding.step_id or ""))
    return findings


def _cycle_through(graph: nx.DiGraph, component: set[str], start: str, order: Callable[[str], int]) -> list[str]:
    if graph.has_edge(start, start):
        return [start]
    subgraph = graph.subgraph(component)
    successor = min((node for node in subgraph.successors(start) if node != start), key=order)
    path: list[str] = nx.shortest_path(subgraph, successor, start)
    return [start, *path[:-1]]


def _cycle_finding(scope: Scope, cycle: list[str]) -> Finding:
    start = cycle[0]
    closing = scope.origins[(cycle[-1], start)]
    field_path = next((path for kind, path in closing if kind == "reference"), None)
    if len(cycle) == 1:
        return error(
            "cycle",
            f"step '{start}' reads its own result in {field_path}; a step cannot depend on itself. "
            "Remove the reference.",
            start,
            field_path,
        )
    pairs = list(zip(cycle, [*cycle[1:], start], strict=True))
    links = "; ".join(_describe_link(scope, source, target) for source, target in pairs)
    ring = " → ".join(f"'{step_id}'" for step_id in [*cycle, start])
    return error(
        "cycle",
        f"steps {ring} form a cycle, so none of them can start ({links}). Remove one of these edges or references.",
        start,
        field_path,
    )


def _describe_link(scope: Scope, source: str, target: str) -> str:
    kind, path = scope.origins[(source, target)][0]
    if kind == "edge":
        return f"edge '{source}' → '{target}'"
    return f"'{target}' reads '{source}' in {path}"


def check_disconnected(scope: Scope, order: Callable[[str], int]) -> list[Finding]:
    """Warn about each weakly connected group of steps beyond the largest one."""
    if scope.graph.number_of_nodes() < 2:
        return []
    groups = list(nx.weakly_connected_components(scope.graph))
    if len(groups) < 2:
        return []
    components = [sorted(group, key=order) for group in groups]
    components.sort(key=lambda members: (-len(members), order(members[0])))
    main = components[0]
    findings: list[Finding] = []
    for members in sorted(components[1:], key=lambda members: order(members[0])):
        subject = f"step '{members[0]}' is" if len(members) == 1 else f"steps {quote_list(members)} are"
        findings.append(
            warning(
                "disconnected",
                f"{subject} disconnected from the rest of {scope.label}: no edge or reference links "
                f"{'it' if len(members) == 1 else 'them'} to steps such as '{main[0]}'. Connect "
                f"{'it' if len(members) == 1 else 'them'} with an edge, or delete what is not needed.",
                members[0],
                None,
            )
        )
    return findings


def check_body(scope: Scope) -> list[Finding]:
    """Check that a for_each body has steps and a well-defined output step."""
    owner = scope.owner
    if owner is None:
        return []
    body_ids = [step.id for step in scope.steps]
    if not body_ids:
        return [
            error(
                "missing-config",
                f"for_each '{owner.id}' has an empty body (config.steps); add at least one step to it.",
                owner.id,
                "config.steps",
            )
        ]
    output = owner.config.output
    if output is not None:
        if output in body_ids:
            return []
        return [
            error(
                "unknown-output-step",
                f"the output step '{output}' of for_each '{owner.id}' is not in its body."
                f"{suggestion(output, body_ids)} Set config.output to one of: {quote_list(body_ids)}.",
                owner.id,
                "config.output",
            )
        ]
    sinks = [node for node in body_ids if scope.graph.out_degree(node) == 0]
    if len(sinks) > 1:
        return [
            error(
                "ambiguous-output",
                f"the body of for_each '{owner.id}' ends in {len(sinks)} steps ({quote_list(sinks)}); set "
                "config.output to the one whose result each item returns.",
                owner.id,
                "config.output",
            )
        ]
    return []
