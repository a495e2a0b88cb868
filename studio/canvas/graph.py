"""Dependency edges a canvas draws for a workflow: explicit edges plus those implied by templates."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from studio.model.templates import TemplateError, iter_references
from studio.model.workflow import AnyStep, Edge, ForEachStep, Workflow, template_fields


@dataclass(frozen=True)
class EdgeSpec:
    """One drawn dependency from ``source`` to ``target`` (step ids).

    ``implied`` is true when the edge comes only from a ``{{steps.<source>.result}}`` reference in
    the target's config, and false when the document lists it in ``edges``.
    """

    source: str
    target: str
    implied: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.target)


@dataclass(frozen=True)
class Scope:
    """The steps and explicit edges at one nesting level: the workflow or one ``for_each`` body."""

    container_id: str | None
    steps: list[AnyStep]
    edges: list[Edge]


def iter_scopes(workflow: Workflow) -> Iterator[Scope]:
    """Yield the top-level scope, then every ``for_each`` body scope, depth first."""
    yield Scope(None, list(workflow.steps), list(workflow.edges))
    for step in workflow.iter_steps():
        if isinstance(step, ForEachStep):
            yield Scope(step.id, list(step.config.steps), list(step.config.edges))


def referenced_step_ids(step: AnyStep) -> set[str]:
    """Return the ids of steps whose results ``step``'s own config references.

    Invalid templates are ignored here because validation reports them. A ``for_each`` step's
    body steps are not included: they are steps of their own.
    """
    found: set[str] = set()
    for _path, value in template_fields(step):
        try:
            for reference in iter_references(value):
                if reference.root == "steps" and reference.step_id is not None:
                    found.add(reference.step_id)
        except TemplateError:
            continue
    return found


class ReferenceCache:
    """Memo of :func:`referenced_step_ids` per step object.

    An editor replaces a step object on every change and never changes one in place, so a step
    object's references never change. Entries of steps that are gone are dropped by :meth:`prune`.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[AnyStep, frozenset[str]]] = {}
        self._seen: set[int] = set()

    def __call__(self, step: AnyStep) -> frozenset[str]:
        key = id(step)
        self._seen.add(key)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is step:
            return entry[1]
        found = frozenset(referenced_step_ids(step))
        self._entries[key] = (step, found)
        return found

    def prune(self) -> None:
        """Forget the steps not looked up since the previous prune."""
        self._entries = {key: entry for key, entry in self._entries.items() if key in self._seen}
        self._seen = set()


def workflow_edges(
    workflow: Workflow, references: Callable[[AnyStep], Iterable[str]] | None = None
) -> list[EdgeSpec]:
    """Return every edge to draw, explicit ones first, each (source, target) pair once.

    ``references`` returns the step ids a step's templates read; pass a :class:`ReferenceCache` to
    avoid parsing unchanged steps again. Implied edges may cross a ``for_each`` boundary: a body step that reads a top-level step's result
    gets an edge from that step. References to unknown steps, to the step itself or to one of
    its enclosing ``for_each`` steps draw nothing.
    """
    lookup = references or referenced_step_ids
    parents = container_of(workflow)
    result: dict[tuple[str, str], EdgeSpec] = {}
    for scope in iter_scopes(workflow):
        for edge in scope.edges:
            if edge.source in parents and edge.target in parents:
                result.setdefault((edge.source, edge.target), EdgeSpec(edge.source, edge.target, implied=False))
    for step in workflow.iter_steps():
        enclosing = set(ancestors(step.id, parents))
        for source in sorted(lookup(step)):
            if source not in parents or source == step.id or source in enclosing:
                continue
            result.setdefault((source, step.id), EdgeSpec(source, step.id, implied=True))
    if isinstance(references, ReferenceCache):
        references.prune()
    return list(result.values())


def container_of(workflow: Workflow) -> dict[str, str | None]:
    """Map every step id to the id of the ``for_each`` whose body contains it (None at top level)."""
    parents: dict[str, str | None] = {}
    for scope in iter_scopes(workflow):
        for step in scope.steps:
            parents[step.id] = scope.container_id
    return parents


def ancestors(step_id: str, parents: dict[str, str | None]) -> list[str]:
    """Return the enclosing ``for_each`` ids of ``step_id``, innermost first."""
    chain: list[str] = []
    current = parents.get(step_id)
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain


def lift_to_scope(step_id: str, container_id: str | None, parents: dict[str, str | None]) -> str | None:
    """Return the step in scope ``container_id`` that is ``step_id`` or encloses it, or None."""
    current: str | None = step_id
    while current is not None:
        if parents.get(current) == container_id:
            return current
        current = parents.get(current)
    return None
