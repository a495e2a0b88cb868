"""Copy and paste of workflow fragments: steps, the edges among them and notes, as clipboard JSON."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.model.edit_errors import EditError
from studio.model.edit_ids import unique_step_id
from studio.model.edit_references import rewrite_step
from studio.model.workflow import (
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    AnyStep,
    Edge,
    ForEachStep,
    Position,
    Step,
    StickyNote,
    Workflow,
    iter_steps,
)

logger = logging.getLogger(__name__)

FRAGMENT_KIND = "workflow-studio/fragment"
"""Value of the ``kind`` key that marks clipboard text as a Workflow Studio fragment."""


class Fragment(BaseModel):
    """Steps (with their ``for_each`` bodies), the explicit edges among them, and notes, for the clipboard."""

    model_config = ConfigDict(extra="forbid")

    kind: str = FRAGMENT_KIND
    schema_version: int = SCHEMA_VERSION
    steps: list[Step] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    notes: list[StickyNote] = Field(default_factory=list)

    def to_clipboard_text(self) -> str:
        """Serialise the fragment as JSON text for the system clipboard."""
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_clipboard_text(cls, text: str) -> Fragment:
        """Parse clipboard text; raise :class:`EditError` when it is not a fragment this release reads."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise EditError("the clipboard does not contain workflow steps (it is not JSON); copy steps first") from None
        if not isinstance(data, dict) or data.get("kind") != FRAGMENT_KIND:
            raise EditError(
                f"the clipboard JSON is not a workflow fragment (expected \"kind\": \"{FRAGMENT_KIND}\"); "
                "copy steps in Workflow Studio first"
            )
        version = data.get("schema_version")
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise EditError(
                f"the clipboard fragment has schema_version {version!r}, but this release reads "
                f"{sorted(SUPPORTED_SCHEMA_VERSIONS)}; copy it again from the same Workflow Studio release"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            location = ".".join(str(part) for part in first["loc"])
            raise EditError(f"the clipboard fragment is invalid at {location}: {first['msg']}") from None

    def step_ids(self) -> list[str]:
        """Return the ids of the fragment's top-level steps, in order."""
        return [step.id for step in self.steps]


def copy_fragment(workflow: Workflow, step_ids: Iterable[str], note_ids: Iterable[str] = ()) -> Fragment:
    """Return a deep copy of the named steps, the explicit edges among them and the named notes.

    Steps may come from any scope. A body step whose ``for_each`` is also named is copied once,
    inside its container. Raise :class:`EditError` naming the first unknown step or note id.
    """
    wanted = list(dict.fromkeys(step_ids))
    by_id = {step.id: step for step in workflow.iter_steps()}
    missing = [step_id for step_id in wanted if step_id not in by_id]
    if missing:
        raise EditError(f"cannot copy step '{missing[0]}': no step has that id; refresh the selection")
    nested = {
        child.id
        for step_id in wanted
        if isinstance(by_id[step_id], ForEachStep)
        for child in iter_steps(_body(by_id[step_id]))
    }
    chosen = [step_id for step_id in wanted if step_id not in nested]
    chosen_set = set(chosen)
    edges = [edge for edge in _all_edges(workflow) if edge.source in chosen_set and edge.target in chosen_set]
    notes_by_id = {note.id: note for note in workflow.notes}
    notes: list[StickyNote] = []
    for note_id in note_ids:
        if note_id not in notes_by_id:
            raise EditError(f"cannot copy note '{note_id}': no note has that id; refresh the selection")
        notes.append(notes_by_id[note_id])
    fragment = Fragment(steps=[by_id[step_id] for step_id in chosen], edges=edges, notes=notes)
    return fragment.model_copy(deep=True)


def _body(step: AnyStep) -> list[AnyStep]:
    return step.config.steps if isinstance(step, ForEachStep) else []


def _all_edges(workflow: Workflow) -> list[Edge]:
    edges = list(workflow.edges)
    for step in workflow.iter_steps():
        if isinstance(step, ForEachStep):
            edges.extend(step.config.edges)
    return edges


def fresh_id_map(step_ids: Iterable[str], taken: Collection[str]) -> dict[str, str]:
    """Map each id to a new id unused in ``taken`` and unused by the other new ids (``fetch`` to ``fetch-2``)."""
    used = set(taken)
    mapping: dict[str, str] = {}
    for step_id in step_ids:
        new_id = unique_step_id(step_id, used | {step_id})
        used.add(new_id)
        mapping[step_id] = new_id
    return mapping


def paste_fragment(
    workflow: Workflow,
    fragment: Fragment,
    *,
    offset: tuple[float, float],
    container_id: str | None = None,
) -> tuple[Workflow, dict[str, str]]:
    """Return a copy of ``workflow`` with the fragment's steps, edges and notes added, and the id map.

    Every pasted step (body steps included) gets a fresh id, and references, edges and ``for_each``
    outputs among pasted steps are rewritten to the new ids. References to steps outside the fragment
    stay as they are. Top-level fragment steps are moved by ``offset`` (steps without a position are
    placed at ``offset``). ``container_id`` names a ``for_each`` whose body receives the steps.
    The notes are added to the workflow with new ids, also moved by ``offset``.
    """
    result = workflow.model_copy(deep=True)
    steps, edges, id_map = prepare_paste(result, fragment, offset)
    target_steps, target_edges = _scope_lists(result, container_id)
    target_steps.extend(steps)
    target_edges.extend(edges)
    result.notes.extend(shifted_notes(fragment.notes, offset))
    logger.debug("pasted %d steps into workflow %s", len(steps), workflow.id)
    return result, id_map


def prepare_paste(
    workflow: Workflow, fragment: Fragment, offset: tuple[float, float]
) -> tuple[list[AnyStep], list[Edge], dict[str, str]]:
    """Return the fragment's steps and edges with fresh ids (unused in ``workflow``), moved by ``offset``."""
    taken = {step.id for step in workflow.iter_steps()}
    id_map = fresh_id_map([step.id for step in iter_steps(list(fragment.steps))], taken)
    steps = [_shift(rewrite_step(step, id_map), offset) for step in fragment.steps]
    edges = [Edge(source=id_map[edge.source], target=id_map[edge.target]) for edge in fragment.edges
             if edge.source in id_map and edge.target in id_map]
    return [step.model_copy(deep=True) for step in steps], edges, id_map


def shifted_notes(notes: Iterable[StickyNote], offset: tuple[float, float]) -> list[StickyNote]:
    """Return copies of ``notes`` with new ids, moved by ``offset``."""
    dx, dy = offset
    return [
        note.model_copy(
            update={"id": uuid.uuid4().hex, "position": Position(x=note.position.x + dx, y=note.position.y + dy)},
            deep=True,
        )
        for note in notes
    ]


def _shift(step: AnyStep, offset: tuple[float, float]) -> AnyStep:
    dx, dy = offset
    base = step.position or Position()
    return step.model_copy(update={"position": Position(x=base.x + dx, y=base.y + dy)})


def _scope_lists(workflow: Workflow, container_id: str | None) -> tuple[list[AnyStep], list[Edge]]:
    if container_id is None:
        return workflow.steps, workflow.edges
    for step in workflow.iter_steps():
        if step.id == container_id:
            if not isinstance(step, ForEachStep):
                raise EditError(
                    f"cannot paste into step '{container_id}': it is a {step.type} step, not a for_each; "
                    "paste on the canvas or into a for_each body"
                )
            return step.config.steps, step.config.edges
    raise EditError(f"cannot paste into '{container_id}': no for_each step has that id; check the container id")
