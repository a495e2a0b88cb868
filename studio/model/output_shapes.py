"""Known output shapes of steps and completion candidates for ``{{...}}`` template paths.

A step's output shape comes from what the document declares: an MCP tool's output schema, an
llm_call's ``output_schema``, a human task's form fields or a for_each's body output. When the
caller passes the last run's results, the step's value from that run is merged in. Completion offers only
steps that a template in the edited step may read: steps of its own level and of enclosing levels,
never the step itself, a for_each that contains it, or a step downstream of it (the reference
would close a cycle).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from studio.model.templates import TemplateError, iter_references, parse_template
from studio.model.workflow import (
    AnyStep,
    Edge,
    ForEachStep,
    HumanTaskStep,
    JsonValue,
    LlmCallStep,
    LuaScriptStep,
    McpCallStep,
    Workflow,
    template_fields,
)

__all__ = [
    "Completion",
    "DependencyIndex",
    "OutputSchemaSource",
    "Shape",
    "ToolOutputSchemas",
    "completions",
    "shape_from_schema",
    "shape_from_value",
    "step_shape",
]

logger = logging.getLogger(__name__)

MAX_DEPTH = 12
"""Nesting depth at which schemas and values stop being followed (recursive ``$ref`` ends here)."""
MAX_SAMPLED_ITEMS = 20
"""List items of a last-run value that are merged into the list's item shape."""

ANY = "any"
_IDENT_PREFIX = re.compile(r"[A-Za-z0-9_-]*")
_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_][A-Za-z0-9_-]*)|\[(\d+)\]")
_FORM_FIELD_KINDS = {
    "text": "string",
    "multiline": "string",
    "choice": "string",
    "number": "number",
    "boolean": "boolean",
    "json": ANY,
}


@dataclass(frozen=True)
class Shape:
    """The known structure of a JSON value: its kind, object properties and list item shape.

    ``kind`` is a JSON Schema type name, several joined by ``|``, or ``any`` when nothing is known.
    """

    kind: str = ANY
    properties: Mapping[str, Shape] = field(default_factory=dict)
    items: Shape | None = None
    description: str = ""

    def child(self, segment: str | int) -> Shape:
        """Return the shape at one path segment; an unknown key or index gives ``any``."""
        if isinstance(segment, int):
            return self.items or Shape()
        return self.properties.get(segment, Shape())


UNKNOWN = Shape()


class OutputSchemaSource(Protocol):
    """Anything that returns an MCP tool's output JSON Schema for a step's server and tool."""

    def output_schema(self, instance_id: str | None, server_url: str | None, tool: str) -> Mapping[str, Any] | None:
        """Return the tool's output schema, or None when it is not known."""
        ...


@dataclass(frozen=True)
class ToolOutputSchemas:
    """Output schemas of MCP tools, keyed like :class:`studio.model.validation_tools.ToolCatalog`.

    ``instances`` maps an instance id and ``servers`` a server URL to ``{tool name: output schema}``.
    """

    instances: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    servers: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def output_schema(self, instance_id: str | None, server_url: str | None, tool: str) -> Mapping[str, Any] | None:
        if instance_id and instance_id in self.instances:
            return self.instances[instance_id].get(tool)
        if server_url and server_url in self.servers:
            return self.servers[server_url].get(tool)
        return None


@dataclass(frozen=True)
class Completion:
    """One completion candidate: the whole expression to put between ``{{`` and ``}}``."""

    text: str
    kind: str
    """Kind of the value at ``text`` (see :attr:`Shape.kind`), or ``step`` for a step id entry."""
    detail: str = ""


# -- shapes ---------------------------------------------------------------------------------------


def merge(first: Shape, second: Shape) -> Shape:
    """Return a shape that has the properties of both; ``first`` wins where both describe a key."""
    if first.kind == ANY and not first.properties and first.items is None:
        return second
    if second.kind == ANY and not second.properties and second.items is None:
        return first
    properties = dict(second.properties)
    for name, shape in first.properties.items():
        properties[name] = merge(shape, properties[name]) if name in properties else shape
    items = first.items
    if items is None:
        items = second.items
    elif second.items is not None:
        items = merge(items, second.items)
    kinds = _kinds(first.kind) + [kind for kind in _kinds(second.kind) if kind not in _kinds(first.kind)]
    if ANY in kinds and len(kinds) > 1:
        kinds.remove(ANY)
    return Shape("|".join(kinds), properties, items, first.description or second.description)


def _kinds(kind: str) -> list[str]:
    return kind.split("|")


def shape_from_schema(schema: Any, root: Any = None, depth: int = 0) -> Shape:
    """Return the shape a JSON Schema describes; local ``$ref`` (``#/...``) is followed, others give ``any``."""
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return UNKNOWN
    root = schema if root is None else root
    reference = schema.get("$ref")
    if isinstance(reference, str):
        target = _resolve_pointer(root, reference)
        shape = shape_from_schema(target, root, depth + 1) if target is not None else UNKNOWN
    else:
        shape = _own_shape(schema, root, depth)
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list):
            for branch in branches:
                shape = merge(shape, shape_from_schema(branch, root, depth + 1))
    return shape


def _own_shape(schema: Mapping[str, Any], root: Any, depth: int) -> Shape:
    declared = schema.get("type")
    if isinstance(declared, str):
        kind = declared
    elif isinstance(declared, list) and all(isinstance(item, str) for item in declared):
        kind = "|".join(declared) or ANY
    elif isinstance(schema.get("properties"), Mapping):
        kind = "object"
    elif "items" in schema:
        kind = "array"
    else:
        kind = ANY
    properties: dict[str, Shape] = {}
    declared_properties = schema.get("properties")
    if isinstance(declared_properties, Mapping):
        for name, subschema in declared_properties.items():
            properties[str(name)] = shape_from_schema(subschema, root, depth + 1)
    items_schema = schema.get("items")
    items = shape_from_schema(items_schema, root, depth + 1) if isinstance(items_schema, Mapping) else None
    description = schema.get("description")
    return Shape(kind, properties, items, description if isinstance(description, str) else "")


def _resolve_pointer(root: Any, reference: str) -> Any:
    if not reference.startswith("#"):
        return None
    node = root
    for raw in reference[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def shape_from_value(value: Any, depth: int = 0) -> Shape:
    """Return the shape of a JSON value, such as a step result from the last run."""
    if depth > MAX_DEPTH:
        return UNKNOWN
    if isinstance(value, Mapping):
        properties = {str(key): shape_from_value(item, depth + 1) for key, item in value.items()}
        return Shape("object", properties)
    if isinstance(value, list):
        items: Shape | None = None
        for item in value[:MAX_SAMPLED_ITEMS]:
            sampled = shape_from_value(item, depth + 1)
            items = sampled if items is None else merge(items, sampled)
        return Shape("array", {}, items)
    if value is None:
        return Shape("null")
    if isinstance(value, bool):
        return Shape("boolean")
    if isinstance(value, int):
        return Shape("integer")
    if isinstance(value, float):
        return Shape("number")
    return Shape("string")


def step_shape(
    step: AnyStep,
    *,
    schemas: OutputSchemaSource | None = None,
    last_results: Mapping[str, JsonValue] | None = None,
) -> Shape:
    """Return the known shape of ``step``'s result: declared structure merged with its last-run value.

    A lua_script's shape comes from its ``output_schema`` when it declares one, else only from the last run.
    """
    declared = _declared_shape(step, schemas, last_results)
    if last_results is not None and step.id in last_results:
        return merge(declared, shape_from_value(last_results[step.id]))
    return declared


def _declared_shape(
    step: AnyStep, schemas: OutputSchemaSource | None, last_results: Mapping[str, JsonValue] | None
) -> Shape:
    if isinstance(step, McpCallStep):
        config = step.config
        schema = None if schemas is None else schemas.output_schema(config.instance_id, config.server_url, config.tool)
        return shape_from_schema(schema) if schema is not None else UNKNOWN
    if isinstance(step, LlmCallStep):
        schema = step.config.output_schema
        return shape_from_schema(schema) if schema is not None else Shape("string", description="the reply text")
    if isinstance(step, LuaScriptStep) and step.config.output_schema is not None:
        return shape_from_schema(step.config.output_schema)
    if isinstance(step, HumanTaskStep):
        return _human_task_shape(step)
    if isinstance(step, ForEachStep):
        output = body_output_step(step)
        item = UNKNOWN if output is None else step_shape(output, schemas=schemas, last_results=last_results)
        errors = Shape("array", {}, UNKNOWN, "one entry per failed item")
        return Shape("object", {"items": Shape("array", {}, item, "one result per input item"), "errors": errors})
    return UNKNOWN


def _human_task_shape(step: HumanTaskStep) -> Shape:
    values = {
        form_field.name: Shape(_FORM_FIELD_KINDS[form_field.type], description=form_field.label)
        for form_field in step.config.fields
    }
    return Shape(
        "object",
        {
            "decision": Shape("string", description="approve or reject"),
            "values": Shape("object", values, description="the form values"),
            "actor": Shape("string", description="who decided"),
        },
    )


def body_output_step(step: ForEachStep) -> AnyStep | None:
    """Return the body step whose result becomes each item's result, or None when it is ambiguous."""
    body = step.config.steps
    if step.config.output is not None:
        return next((candidate for candidate in body if candidate.id == step.config.output), None)
    sources = {edge.source for edge in step.config.edges}
    for candidate in body:
        for reference in _step_references(candidate):
            sources.add(reference)
    sinks = [candidate for candidate in body if candidate.id not in sources]
    return sinks[0] if len(sinks) == 1 else None


# -- dependencies ---------------------------------------------------------------------------------


def _step_references(step: AnyStep) -> set[str]:
    found: set[str] = set()
    for _path, value in template_fields(step):
        if isinstance(value, str) and "{{" in value:
            found.update(_referenced_ids(value))
    return found


@functools.lru_cache(maxsize=16384)
def _referenced_ids(text: str) -> frozenset[str]:
    # Cached by text because an index is rebuilt after every edit and almost every template is unchanged.
    try:
        return frozenset(reference.step_id for reference in iter_references(text) if reference.step_id)
    except TemplateError:
        return frozenset()


@dataclass
class _Level:
    owner: str | None
    ids: list[str]
    predecessors: dict[str, set[str]]
    successors: dict[str, set[str]]


class DependencyIndex:
    """Levels, containment and dependencies (edges and implied reference edges) of one workflow."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.steps: dict[str, AnyStep] = {}
        self.level_of: dict[str, _Level] = {}
        self._levels: list[_Level] = []
        self._shapes: dict[str, Shape] = {}
        self._shape_sources: tuple[object, object] = (None, None)
        self._collect(workflow.steps, workflow.edges, None)
        for step in self.steps.values():
            for source in _step_references(step):
                self._add_reference(source, step.id)

    def _collect(self, steps: list[AnyStep], edges: list[Edge], owner: str | None) -> None:
        level = _Level(owner, [], {}, {})
        self._levels.append(level)
        for step in steps:
            if step.id in self.steps:
                continue  # A duplicate id keeps its first place, as in validation.
            self.steps[step.id] = step
            self.level_of[step.id] = level
            level.ids.append(step.id)
            level.predecessors[step.id] = set()
            level.successors[step.id] = set()
        for edge in edges:
            self._link(level, edge.source, edge.target)
        for step in steps:
            if isinstance(step, ForEachStep):
                self._collect(step.config.steps, step.config.edges, step.id)

    def _link(self, level: _Level, source: str, target: str) -> None:
        if source in level.predecessors and target in level.predecessors and source != target:
            level.predecessors[target].add(source)
            level.successors[source].add(target)

    def _add_reference(self, source: str, reader: str) -> None:
        source_level = self.level_of.get(source)
        if source_level is None:
            return
        # A body step that reads an enclosing level depends, on that level, through its for_each.
        for holder in self.enclosing_chain(reader):
            if self.level_of[holder] is source_level:
                self._link(source_level, source, holder)
                return

    def shape(
        self, step_id: str, schemas: OutputSchemaSource | None, last_results: Mapping[str, JsonValue] | None
    ) -> Shape:
        """Return :func:`step_shape` of ``step_id``, cached while ``schemas`` and ``last_results`` stay the same objects."""
        if self._shape_sources[0] is not schemas or self._shape_sources[1] is not last_results:
            self._shapes = {}
            self._shape_sources = (schemas, last_results)
        shape = self._shapes.get(step_id)
        if shape is None:
            shape = step_shape(self.steps[step_id], schemas=schemas, last_results=last_results)
            self._shapes[step_id] = shape
        return shape

    def enclosing_chain(self, step_id: str) -> list[str]:
        """Return ``step_id`` followed by the for_each steps that contain it, innermost first."""
        chain = [step_id]
        level = self.level_of.get(step_id)
        while level is not None and level.owner is not None:
            chain.append(level.owner)
            level = self.level_of.get(level.owner)
        return chain

    def _closure(self, step_id: str, upward: bool) -> set[str]:
        found: set[str] = set()
        for holder in self.enclosing_chain(step_id):
            level = self.level_of[holder]
            links = level.predecessors if upward else level.successors
            stack = [holder]
            while stack:
                for neighbour in links[stack.pop()]:
                    if neighbour not in found:
                        found.add(neighbour)
                        stack.append(neighbour)
        return found

    def upstream(self, step_id: str) -> set[str]:
        """Return the steps ``step_id`` already depends on, at its level and enclosing levels."""
        return self._closure(step_id, upward=True)

    def downstream(self, step_id: str) -> set[str]:
        """Return the steps that depend on ``step_id`` or on a for_each containing it."""
        return self._closure(step_id, upward=False)

    def readable_steps(self, step_id: str, *, include_independent: bool = True) -> list[tuple[str, bool]]:
        """Return ``(id, is_upstream)`` for each step a template in ``step_id`` may read, upstream first.

        With ``include_independent``, steps that are neither upstream nor downstream follow: reading
        one adds a dependency on it, which is legal because it closes no cycle.
        """
        chain = self.enclosing_chain(step_id)
        upstream = self.upstream(step_id)
        downstream = self.downstream(step_id) if include_independent else set()
        visible: list[str] = []
        for holder in chain:
            visible.extend(candidate for candidate in self.level_of[holder].ids if candidate not in chain)
        first = [(candidate, True) for candidate in visible if candidate in upstream]
        if not include_independent:
            return first
        rest = [
            (candidate, False) for candidate in visible if candidate not in upstream and candidate not in downstream
        ]
        return first + rest


# -- completion -----------------------------------------------------------------------------------


def completions(
    workflow: Workflow,
    step_id: str,
    prefix: str,
    *,
    schemas: OutputSchemaSource | None = None,
    last_results: Mapping[str, JsonValue] | None = None,
    include_independent: bool = True,
    index: DependencyIndex | None = None,
) -> list[Completion]:
    """Return the candidates for the template text ``prefix`` typed after ``{{`` in a field of ``step_id``.

    Each candidate's ``text`` starts with the whole prefix, so a caller replaces the prefix with it.
    ``last_results`` maps step ids to their results in the last run. ``index`` is a
    :class:`DependencyIndex` of ``workflow`` to reuse. Building one parses every template of the
    workflow, so callers that complete on every keystroke keep one until the document changes.
    """
    if index is None:
        index = DependencyIndex(workflow)
    if step_id not in index.steps:
        raise KeyError(f"no step with id '{step_id}' in workflow '{workflow.name}'; pass the id of the edited step")
    text = prefix.lstrip()
    leading = prefix[: len(prefix) - len(text)]
    context = _Context(index, step_id, schemas, last_results, include_independent)
    if text.startswith("steps."):
        found = _step_completions(context, text)
    elif text.startswith("input.") or text.startswith("input["):
        found = _path_completions("input", text[len("input") :], shape_from_schema(workflow.input_schema))
    elif text.startswith(("item.", "item[")) and context.item_shape() is not None:
        found = _path_completions("item", text[len("item") :], context.item_shape() or UNKNOWN)
    else:
        found = [candidate for candidate in _root_completions(context) if candidate.text.startswith(text)]
    return [Completion(leading + candidate.text, candidate.kind, candidate.detail) for candidate in found]


@dataclass
class _Context:
    index: DependencyIndex
    step_id: str
    schemas: OutputSchemaSource | None
    last_results: Mapping[str, JsonValue] | None
    include_independent: bool

    def shape_of(self, step_id: str) -> Shape:
        return self.index.shape(step_id, self.schemas, self.last_results)

    def item_shape(self) -> Shape | None:
        """Return the shape of ``{{item}}`` for the edited step, or None outside a for_each body."""
        chain = self.index.enclosing_chain(self.step_id)
        if len(chain) < 2:
            return None
        owner = self.index.steps[chain[1]]
        assert isinstance(owner, ForEachStep)
        items = self._items_shape(owner)
        return items.items or UNKNOWN

    def _items_shape(self, owner: ForEachStep) -> Shape:
        items = owner.config.items
        if not isinstance(items, str):
            return shape_from_value(items)
        try:
            template = parse_template(items)
        except TemplateError:
            return UNKNOWN
        if not template.is_single_reference:
            return UNKNOWN
        reference = template.references[0]
        if reference.root == "steps" and reference.step_id in self.index.steps:
            base = self.shape_of(reference.step_id)
        elif reference.root == "input":
            base = shape_from_schema(self.index.workflow.input_schema)
        else:
            return UNKNOWN
        for segment in reference.path:
            base = base.child(segment)
        return base


def _root_completions(context: _Context) -> list[Completion]:
    found = [
        Completion("steps.", "step", "the result of another step"),
        Completion("input.", "object", "a field of the run input"),
    ]
    if len(context.index.enclosing_chain(context.step_id)) > 1:
        found.append(Completion("item", (context.item_shape() or UNKNOWN).kind, "the current for_each item"))
        found.append(Completion("index", "integer", "the current item's position, from 0"))
    found.append(Completion("run.id", "string", "the id of the run"))
    return found


def _step_completions(context: _Context, text: str) -> list[Completion]:
    rest = text[len("steps.") :]
    typed_id = _IDENT_PREFIX.match(rest)
    assert typed_id is not None
    step_part = typed_id.group(0)
    after = rest[len(step_part) :]
    readable = context.index.readable_steps(context.step_id, include_independent=context.include_independent)
    if not after:
        found: list[Completion] = []
        for candidate, is_upstream in readable:
            if candidate.startswith(step_part):
                step = context.index.steps[candidate]
                note = "upstream" if is_upstream else "not connected yet: reading it adds a dependency"
                detail = f"{step.title} ({step.type}), {note}"
                found.append(Completion(f"steps.{candidate}.result", context.shape_of(candidate).kind, detail))
        return found
    if step_part not in dict(readable):
        return []
    base = f"steps.{step_part}.result"
    if base.startswith(text):
        return [Completion(base, context.shape_of(step_part).kind, "the step's result")]
    if not text.startswith(base):
        return []
    return _path_completions(base, text[len(base) :], context.shape_of(step_part))


def _path_completions(base: str, path_text: str, shape: Shape) -> list[Completion]:
    """Offer the children of the shape at the complete segments of ``path_text``, filtered by its last part."""
    position = 0
    walked = base
    current = shape
    tokens = list(_PATH_TOKEN.finditer(path_text))
    for token in tokens:
        if token.start() != position:
            return []
        is_last = token.end() == len(path_text)
        key, number = token.groups()
        if is_last and key is not None:
            return _children(walked, current, key)  # the trailing name may still be incomplete
        current = current.child(int(number) if number is not None else key)
        walked += token.group(0)
        position = token.end()
    remainder = path_text[position:]
    if remainder == "" and walked != base:
        return [Completion(walked, current.kind, current.description)]
    if remainder in ("", ".", "["):
        return _children(walked, current, "", index_only=remainder == "[", keys_only=remainder == ".")
    return []


def _children(
    walked: str, shape: Shape, typed: str, *, index_only: bool = False, keys_only: bool = False
) -> list[Completion]:
    found: list[Completion] = []
    if not index_only:
        for name, child in shape.properties.items():
            if name.startswith(typed) and _PATH_TOKEN.fullmatch(f".{name}"):
                found.append(Completion(f"{walked}.{name}", child.kind, child.description))
    if not keys_only and not typed and "array" in _kinds(shape.kind):
        item = shape.items or UNKNOWN
        found.append(Completion(f"{walked}[0]", item.kind, "the first item"))
    return found
