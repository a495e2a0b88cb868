"""Undo commands of the editor: one class per kind of edit, each storing only the ids and data it changes.

Commands change the workflow only through the ``_apply_*`` primitives of
:class:`~studio.canvas.document.EditorDocument`. Each command reads the state it replaces when
it runs (``redo``), so it restores exactly that on ``undo``. The document methods validate
input before they push a command, so ``redo`` does not raise for input errors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

from studio.model.edit_references import rewrite_step
from studio.model.edits import find_usages
from studio.model.workflow import AnyStep, Edge, ForEachStep, Group, Position, StickyNote

if TYPE_CHECKING:
    from studio.canvas.document import EditorDocument, StepSlot

logger = logging.getLogger(__name__)

MOVE_COMMAND_ID = 1001
"""QUndoCommand id shared by mergeable move commands; QUndoStack only merges commands with equal ids."""


class DocumentCommand(QUndoCommand):
    """Base of the editor's commands: ``redo`` runs :meth:`_redo` and ``undo`` runs :meth:`_undo`.

    The document emits ``sig_changed`` when the undo stack's index changes, that is after the
    command (or the whole macro) ran and the clean state is up to date.
    """

    def __init__(self, document: EditorDocument, text: str, parent: QUndoCommand | None = None) -> None:
        super().__init__(text, parent)
        self.document = document

    def redo(self) -> None:
        self._redo()

    def undo(self) -> None:
        self._undo()

    def _redo(self) -> None:
        raise NotImplementedError

    def _undo(self) -> None:
        raise NotImplementedError


class CompositeCommand(QUndoCommand):
    """Several commands as one undo step: they run in order on redo and in reverse order on undo.

    The parts are plain Python members, not Qt child commands, because PySide6 6.11 crashed
    (double delete) when the undo stack discarded a parent whose Python children were still referenced.
    """

    def __init__(self, text: str, parts: list[QUndoCommand]) -> None:
        super().__init__(text)
        self._parts = parts

    def redo(self) -> None:
        for part in self._parts:
            part.redo()

    def undo(self) -> None:
        for part in reversed(self._parts):
            part.undo()


class AddStepsCommand(DocumentCommand):
    """Insert steps at given slots, with explicit edges and notes that came along (paste, duplicate)."""

    def __init__(
        self,
        document: EditorDocument,
        slots: list[StepSlot],
        text: str,
        *,
        edges: dict[str | None, list[Edge]] | None = None,
        notes: list[StickyNote] | None = None,
        parent: QUndoCommand | None = None,
    ) -> None:
        super().__init__(document, text, parent)
        self._slots = slots
        self._edges = edges or {}
        self._notes = notes or []
        self._old_edges: dict[str | None, list[Edge]] = {}
        self._old_notes: list[StickyNote] = []

    @property
    def step_ids(self) -> list[str]:
        return [slot.step.id for slot in self._slots]

    def _redo(self) -> None:
        self.document._apply_insert(self._slots)
        self._old_edges = {}
        for container_id, added in self._edges.items():
            if added:
                current = list(self.document.scope_edges(container_id))
                self._old_edges[container_id] = current
                self.document._apply_edges(container_id, current + added)
        if self._notes:
            self._old_notes = list(self.document.workflow.notes)
            self.document._apply_notes(self._old_notes + self._notes)

    def _undo(self) -> None:
        if self._notes:
            self.document._apply_notes(self._old_notes)
        for container_id, edges in self._old_edges.items():
            self.document._apply_edges(container_id, edges)
        self.document._apply_take(self.step_ids)


class RemoveStepsCommand(DocumentCommand):
    """Remove steps with their ``for_each`` bodies, every explicit edge touching them and their group memberships."""

    def __init__(self, document: EditorDocument, step_ids: list[str], text: str,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, text, parent)
        self._step_ids = step_ids
        self._slots: list[StepSlot] = []
        self._old_edges: dict[str | None, list[Edge]] = {}
        self._old_groups: list[Group] | None = None

    def _redo(self) -> None:
        document = self.document
        outermost = _outermost(document, self._step_ids)
        removed: set[str] = set()
        for step_id in outermost:
            removed.update(_ids_with_bodies(document.find_step(step_id)))
        self._old_edges = {}
        for container_id in _scope_ids(document, set(outermost)):
            edges = document.scope_edges(container_id)
            kept = [edge for edge in edges if edge.source not in removed and edge.target not in removed]
            if len(kept) != len(edges):
                self._old_edges[container_id] = list(edges)
                document._apply_edges(container_id, kept)
        groups = document.workflow.groups
        self._old_groups = None
        if any(member in removed for group in groups for member in group.step_ids):
            self._old_groups = list(groups)
            document._apply_groups(_groups_without(groups, removed))
        self._slots = document._apply_take(outermost)

    def _undo(self) -> None:
        document = self.document
        document._apply_insert(self._slots)
        for container_id, edges in self._old_edges.items():
            document._apply_edges(container_id, edges)
        if self._old_groups is not None:
            document._apply_groups(self._old_groups)


class SetStepsCommand(DocumentCommand):
    """Replace steps by new versions with the same ids (field edits, whole-step edits, layout pins)."""

    def __init__(self, document: EditorDocument, pairs: list[tuple[AnyStep, AnyStep]], text: str,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, text, parent)
        self._pairs = pairs

    def _redo(self) -> None:
        self.document._apply_replace(self._pairs)

    def _undo(self) -> None:
        self.document._apply_replace([(new, old) for old, new in reversed(self._pairs)])


class MoveStepsCommand(DocumentCommand):
    """Set the positions of some steps. Moves of one drag (same ``drag_serial``) merge into one command."""

    def __init__(
        self,
        document: EditorDocument,
        old: dict[str, Position | None],
        new: dict[str, Position | None],
        text: str,
        *,
        drag_serial: int | None = None,
        parent: QUndoCommand | None = None,
    ) -> None:
        super().__init__(document, text, parent)
        self._old = old
        self._new = new
        self._drag_serial = drag_serial

    def id(self) -> int:
        return MOVE_COMMAND_ID if self._drag_serial is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MoveStepsCommand) or other._drag_serial != self._drag_serial:
            return False
        for step_id, position in other._old.items():
            self._old.setdefault(step_id, position)
        self._new.update(other._new)
        if len(self._new) > 1:
            self.setText(f"Move {len(self._new)} steps")
        return True

    def _redo(self) -> None:
        self.document._apply_positions(self._new)

    def _undo(self) -> None:
        self.document._apply_positions(self._old)


class ConnectCommand(DocumentCommand):
    """Add one explicit edge to the scope (top level or a ``for_each`` body) of its two steps."""

    def __init__(self, document: EditorDocument, container_id: str | None, edge: Edge,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, f"Connect {edge.source} → {edge.target}", parent)
        self._container_id = container_id
        self._edge = edge
        self._old: list[Edge] = []

    def _redo(self) -> None:
        self._old = list(self.document.scope_edges(self._container_id))
        self.document._apply_edges(self._container_id, [*self._old, self._edge])

    def _undo(self) -> None:
        self.document._apply_edges(self._container_id, self._old)


class DisconnectCommand(DocumentCommand):
    """Remove one explicit edge from its scope."""

    def __init__(self, document: EditorDocument, container_id: str | None, edge: Edge,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, f"Disconnect {edge.source} → {edge.target}", parent)
        self._container_id = container_id
        self._edge = edge
        self._old: list[Edge] = []

    def _redo(self) -> None:
        self._old = list(self.document.scope_edges(self._container_id))
        kept = [edge for edge in self._old if (edge.source, edge.target) != (self._edge.source, self._edge.target)]
        self.document._apply_edges(self._container_id, kept)

    def _undo(self) -> None:
        self.document._apply_edges(self._container_id, self._old)


class RenameStepCommand(DocumentCommand):
    """Rename a step and rewrite its explicit edges, groups, ``for_each`` outputs and template references.

    Only the renamed step and the steps that reference it are replaced. A ``for_each`` among them
    keeps its body list, and the body steps are rewritten one by one.
    """

    def __init__(self, document: EditorDocument, old_id: str, new_id: str,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, f"Rename {old_id} to {new_id}", parent)
        self._old_id = old_id
        self._new_id = new_id
        self._pairs: list[tuple[AnyStep, AnyStep]] = []
        self._old_edges: dict[str | None, list[Edge]] = {}
        self._old_groups: list[Group] | None = None

    def _redo(self) -> None:
        document = self.document
        id_map = {self._old_id: self._new_id}
        readers = [usage.step_id for usage in find_usages(document.workflow, self._old_id)]
        targets = [*dict.fromkeys(step_id for step_id in readers if step_id != self._old_id), self._old_id]
        self._pairs = []
        for step_id in targets:
            step = document.find_step(step_id)
            self._pairs.append((step, rewrite_step(step, id_map, include_body=False)))
        self._old_edges = {}
        for container_id in _scope_ids(document, {self._old_id}):
            edges = document.scope_edges(container_id)
            if any(self._old_id in (edge.source, edge.target) for edge in edges):
                self._old_edges[container_id] = list(edges)
        self._old_groups = list(document.workflow.groups) if _grouped(document, self._old_id) else None
        document._apply_replace(self._pairs)
        for container_id, edges in self._old_edges.items():
            renamed = [Edge(source=id_map.get(e.source, e.source), target=id_map.get(e.target, e.target))
                       for e in edges]
            document._apply_edges(id_map.get(container_id, container_id) if container_id else None, renamed)
        if self._old_groups is not None:
            document._apply_groups([
                group.model_copy(update={"step_ids": [id_map.get(m, m) for m in group.step_ids]})
                for group in self._old_groups
            ])

    def _undo(self) -> None:
        document = self.document
        id_map = {self._old_id: self._new_id}
        for container_id, edges in self._old_edges.items():
            document._apply_edges(id_map.get(container_id, container_id) if container_id else None, edges)
        if self._old_groups is not None:
            document._apply_groups(self._old_groups)
        document._apply_replace([(new, old) for old, new in reversed(self._pairs)])


class SetNotesCommand(DocumentCommand):
    """Replace the list of notes (add, change, move, resize or remove notes)."""

    def __init__(self, document: EditorDocument, new: list[StickyNote], text: str,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, text, parent)
        self._new = new
        self._old: list[StickyNote] = []

    def _redo(self) -> None:
        self._old = list(self.document.workflow.notes)
        self.document._apply_notes(self._new)

    def _undo(self) -> None:
        self.document._apply_notes(self._old)


class SetGroupsCommand(DocumentCommand):
    """Replace the list of groups (group, ungroup, retitle)."""

    def __init__(self, document: EditorDocument, new: list[Group], text: str,
                 parent: QUndoCommand | None = None) -> None:
        super().__init__(document, text, parent)
        self._new = new
        self._old: list[Group] = []

    def _redo(self) -> None:
        self._old = list(self.document.workflow.groups)
        self.document._apply_groups(self._new)

    def _undo(self) -> None:
        self.document._apply_groups(self._old)


def _ids_with_bodies(step: AnyStep) -> list[str]:
    ids = [step.id]
    if isinstance(step, ForEachStep):
        for child in step.config.steps:
            ids.extend(_ids_with_bodies(child))
    return ids


def _outermost(document: EditorDocument, step_ids: list[str]) -> list[str]:
    """Drop ids whose enclosing ``for_each`` is also in ``step_ids`` (removing it removes them)."""
    chosen = set(step_ids)
    result: list[str] = []
    for step_id in dict.fromkeys(step_ids):
        container = document.slot(step_id).container_id
        enclosed = False
        while container is not None:
            if container in chosen:
                enclosed = True
                break
            container = document.slot(container).container_id
        if not enclosed:
            result.append(step_id)
    return result


def _scope_ids(document: EditorDocument, step_ids: set[str]) -> list[str | None]:
    """Return the scopes whose edges may name ``step_ids``: the scopes that contain them."""
    scopes: dict[str | None, None] = {}
    for step_id in step_ids:
        if document.has_step(step_id):
            scopes[document.slot(step_id).container_id] = None
    return list(scopes)


def _groups_without(groups: list[Group], removed: set[str]) -> list[Group]:
    kept: list[Group] = []
    for group in groups:
        members = [member for member in group.step_ids if member not in removed]
        if members:
            kept.append(group.model_copy(update={"step_ids": members}))
    return kept


def _grouped(document: EditorDocument, step_id: str) -> bool:
    return any(step_id in group.step_ids for group in document.workflow.groups)
