"""Differences between two workflow documents: steps, edges, notes and per-step config fields."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from studio.model.workflow import AnyStep, Edge, ForEachStep, JsonValue, Workflow

logger = logging.getLogger(__name__)

StepStatus = Literal["added", "removed", "changed", "moved"]
"""``moved`` means only the canvas position differs; ``changed`` means anything else differs too."""

_BODY_KEYS = ("steps", "edges")
"""for_each config keys whose content is compared step by step instead of as one value."""

_WORKFLOW_FIELDS = ("name", "description", "input_schema", "tags", "groups")
"""Document fields compared as whole values (``groups`` only where the document model has them)."""


@dataclass(frozen=True)
class FieldChange:
    """One value that differs; ``path`` is relative to the step (``config.prompt``) or the document."""

    path: str
    old: JsonValue
    new: JsonValue
    kind: Literal["added", "removed", "changed"] = "changed"


@dataclass(frozen=True)
class StepDiff:
    """The differences of one step between the two documents."""

    step_id: str
    status: StepStatus
    step_type: str
    """The type in the newer document, or in the older one for a removed step."""
    container: str | None
    """Id of the for_each whose body contains the step (in the newer document), None at the top level."""
    moved: bool = False
    """Whether the canvas position differs (also set for ``changed`` steps)."""
    changes: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class EdgeKey:
    """An edge and the level it belongs to: None for the top level, else the for_each id."""

    container: str | None
    source: str
    target: str

    def describe(self) -> str:
        where = "" if self.container is None else f" (in {self.container})"
        return f"{self.source} → {self.target}{where}"


@dataclass
class WorkflowDiff:
    """The differences from an older document (``a``) to a newer one (``b``)."""

    steps: dict[str, StepDiff] = field(default_factory=dict)
    """Steps that differ, by id, in the order of the newer document followed by removed steps."""
    edges_added: list[EdgeKey] = field(default_factory=list)
    edges_removed: list[EdgeKey] = field(default_factory=list)
    notes_added: list[str] = field(default_factory=list)
    notes_removed: list[str] = field(default_factory=list)
    notes_changed: list[str] = field(default_factory=list)
    workflow_changes: list[FieldChange] = field(default_factory=list)
    """Changes of the document's own fields: name, description, input schema and tags."""

    def ids(self, status: StepStatus) -> list[str]:
        """Return the ids of the steps with ``status``."""
        return [step_id for step_id, item in self.steps.items() if item.status == status]

    @property
    def added(self) -> list[str]:
        return self.ids("added")

    @property
    def removed(self) -> list[str]:
        return self.ids("removed")

    @property
    def changed(self) -> list[str]:
        return self.ids("changed")

    @property
    def moved(self) -> list[str]:
        return self.ids("moved")

    def is_empty(self) -> bool:
        """Return whether the documents have the same steps, edges, notes and workflow fields."""
        return not (
            self.steps
            or self.edges_added
            or self.edges_removed
            or self.notes_added
            or self.notes_removed
            or self.notes_changed
            or self.workflow_changes
        )

    def summary(self) -> str:
        """Return one line such as ``2 added, 1 removed, 3 changed, 1 moved, 2 edges added``."""
        parts = [
            f"{len(ids)} {label}"
            for ids, label in (
                (self.added, "added"),
                (self.removed, "removed"),
                (self.changed, "changed"),
                (self.moved, "moved"),
                (self.edges_added, "edges added"),
                (self.edges_removed, "edges removed"),
            )
            if ids
        ]
        notes = len(self.notes_added) + len(self.notes_removed) + len(self.notes_changed)
        if notes:
            parts.append(f"{notes} notes changed")
        if self.workflow_changes:
            parts.append("workflow fields changed: " + ", ".join(change.path for change in self.workflow_changes))
        return ", ".join(parts) if parts else "no differences"


def diff_workflows(a: Workflow, b: Workflow) -> WorkflowDiff:
    """Compare an older document ``a`` with a newer one ``b``.

    Steps are matched by id at any depth (ids are unique in a whole workflow), so a step renamed
    by id shows as one removed and one added step.
    """
    old_steps = dict(_steps_with_container(a.steps, None))
    new_steps = dict(_steps_with_container(b.steps, None))
    result = WorkflowDiff()
    for step_id, (step, container) in new_steps.items():
        previous = old_steps.get(step_id)
        if previous is None:
            result.steps[step_id] = StepDiff(step_id, "added", step.type, container)
            continue
        item = _diff_step(previous[0], previous[1], step, container)
        if item is not None:
            result.steps[step_id] = item
    for step_id, (step, container) in old_steps.items():
        if step_id not in new_steps:
            result.steps[step_id] = StepDiff(step_id, "removed", step.type, container)

    old_edges = _edge_keys(a.steps, a.edges, None)
    new_edges = _edge_keys(b.steps, b.edges, None)
    result.edges_added = [key for key in new_edges if key not in old_edges]
    result.edges_removed = [key for key in old_edges if key not in new_edges]
    _diff_notes(a, b, result)
    for name in _WORKFLOW_FIELDS:
        result.workflow_changes.extend(_diff_values(name, _field_data(a, name), _field_data(b, name)))
    logger.debug("Compared workflow %s with %s: %s", a.id, b.id, result.summary())
    return result


def diff_step_config(a: AnyStep, b: AnyStep) -> list[FieldChange]:
    """Return the field changes between two versions of one step, position and body steps left out."""
    return _diff_values("", _comparable(a), _comparable(b))


def _steps_with_container(
    steps: list[AnyStep], container: str | None
) -> Iterator[tuple[str, tuple[AnyStep, str | None]]]:
    for step in steps:
        yield step.id, (step, container)
        if isinstance(step, ForEachStep):
            yield from _steps_with_container(step.config.steps, step.id)


def _edge_keys(steps: list[AnyStep], edges: list[Edge], container: str | None) -> list[EdgeKey]:
    keys = [EdgeKey(container, edge.source, edge.target) for edge in edges]
    for step in steps:
        if isinstance(step, ForEachStep):
            keys.extend(_edge_keys(step.config.steps, step.config.edges, step.id))
    return keys


def _comparable(step: AnyStep) -> dict[str, Any]:
    data = step.model_dump(mode="json")
    data.pop("position", None)
    if isinstance(step, ForEachStep):
        for key in _BODY_KEYS:
            data["config"].pop(key, None)
    return data


def _diff_step(old: AnyStep, old_container: str | None, new: AnyStep, container: str | None) -> StepDiff | None:
    changes = diff_step_config(old, new)
    if old_container != container:
        changes.insert(0, FieldChange("container", old_container, container))
    moved = old.position != new.position
    if changes:
        return StepDiff(new.id, "changed", new.type, container, moved, tuple(changes))
    if moved:
        return StepDiff(new.id, "moved", new.type, container, True)
    return None


def _diff_values(path: str, old: Any, new: Any) -> list[FieldChange]:
    """Return the leaf differences between two JSON values; lists of unequal length count as one value."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[FieldChange] = []
        for key in list(old) + [key for key in new if key not in old]:
            child = f"{path}.{key}" if path else str(key)
            # A key that is absent on one side and null on the other is the same default, not a change.
            if key not in new:
                if old[key] is not None:
                    changes.append(FieldChange(child, old[key], None, "removed"))
            elif key not in old:
                if new[key] is not None:
                    changes.append(FieldChange(child, None, new[key], "added"))
            else:
                changes.extend(_diff_values(child, old[key], new[key]))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        changes = []
        for index, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
            changes.extend(_diff_values(f"{path}[{index}]", old_item, new_item))
        return changes
    return [FieldChange(path, old, new)]


def _field_data(workflow: Workflow, name: str) -> Any:
    value = getattr(workflow, name, None)
    if isinstance(value, list):
        return [item.model_dump(mode="json") if hasattr(item, "model_dump") else item for item in value]
    return value


def _diff_notes(a: Workflow, b: Workflow, result: WorkflowDiff) -> None:
    old_notes = {note.id: note for note in a.notes}
    new_notes = {note.id: note for note in b.notes}
    result.notes_added = [note_id for note_id in new_notes if note_id not in old_notes]
    result.notes_removed = [note_id for note_id in old_notes if note_id not in new_notes]
    result.notes_changed = [
        note_id for note_id, note in new_notes.items() if note_id in old_notes and old_notes[note_id] != note
    ]
