"""The editor document: the open workflow, its undo stack, and signals the scene and panels follow.

Edit methods push one undo command each. Commands change the workflow only through the
``_apply_*`` primitives below, which replace step objects in their lists (a step object is
never changed in place) and emit the fine-grained signals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from studio.canvas.commands import (
    AddStepsCommand,
    CompositeCommand,
    ConnectCommand,
    DisconnectCommand,
    MoveStepsCommand,
    RemoveStepsCommand,
    RenameStepCommand,
    SetGroupsCommand,
    SetNotesCommand,
    SetStepsCommand,
)
from studio.model.document import save_workflow
from studio.model.edit_fields import with_field
from studio.model.edit_fragments import prepare_paste, shifted_notes
from studio.model.edit_ids import check_new_step_id
from studio.model.edits import EditError, Fragment, copy_fragment
from studio.model.workflow import AnyStep, Edge, ForEachStep, Group, Position, StickyNote, Workflow

logger = logging.getLogger(__name__)

DUPLICATE_OFFSET = (40.0, 40.0)
"""Offset of duplicated steps from the originals, in scene units."""


@dataclass(frozen=True)
class StepSlot:
    """Location of a step: the ``for_each`` whose body contains it (None at top level) and its list index."""

    container_id: str | None
    index: int
    step: AnyStep


class EditorDocument(QObject):
    """One open workflow with undo history, clean state and change signals.

    ``workflow`` is the current document. Callers read it but never change it: every change goes
    through an edit method, so it can be undone and the scene,
    validation and autosave hear about it.
    """

    sig_reset = Signal()
    """Emitted after the whole document was replaced (load, restore). No arguments."""
    sig_steps_added = Signal(list)
    """Emitted with the ids of steps that were inserted (body steps of an added ``for_each`` included)."""
    sig_steps_removed = Signal(list)
    """Emitted with the ids of steps that were removed (body steps of a removed ``for_each`` included)."""
    sig_steps_changed = Signal(list)
    """Emitted with the ids of steps whose config, title, type or flags changed."""
    sig_steps_moved = Signal(list)
    """Emitted with the ids of steps whose position changed."""
    sig_step_renamed = Signal(str, str)
    """Emitted with the old and the new id after a step was renamed."""
    sig_edges_changed = Signal()
    """Emitted after explicit edges were added or removed. No arguments."""
    sig_notes_changed = Signal()
    """Emitted after notes were added, removed or changed. No arguments."""
    sig_groups_changed = Signal()
    """Emitted after groups were added, removed or changed. No arguments."""
    sig_changed = Signal()
    """Emitted after every edit, undo and redo: the hook for debounced validation and autosave."""
    sig_dirty_changed = Signal(bool)
    """Emitted with True when the document gets unsaved changes and False when it becomes clean."""
    sig_saved = Signal(str)
    """Emitted with the file path after a successful save."""

    def __init__(self, workflow: Workflow | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workflow = workflow if workflow is not None else Workflow()
        self.undo_stack = QUndoStack(self)
        self.path: Path | None = None
        self.read_only = False
        self._forced_dirty = False
        self._last_dirty = False
        self._index: dict[str, tuple[str | None, int]] | None = None
        self._drag_serial = 0
        self._loading = False
        self._macro_depth = 0
        self.undo_stack.cleanChanged.connect(self._on_undo_stack_clean_changed)
        self.undo_stack.indexChanged.connect(self._on_undo_stack_index_changed)

    # -- state -----------------------------------------------------------------------------

    @property
    def workflow(self) -> Workflow:
        """The current workflow; treat it as read-only."""
        return self._workflow

    @property
    def workflow_id(self) -> str:
        return self._workflow.id

    @property
    def drag_serial(self) -> int:
        """Number of the current drag; move commands of one drag share it and merge."""
        return self._drag_serial

    def is_dirty(self) -> bool:
        """Return True when the document differs from its file (or was restored and never saved)."""
        return self._forced_dirty or not self.undo_stack.isClean()

    def snapshot(self) -> Workflow:
        """Return a deep copy of the workflow that later edits do not affect, for runs and publishing."""
        return self._workflow.model_copy(deep=True)

    def load(self, workflow: Workflow, path: Path | None = None, *, dirty: bool = False) -> None:
        """Replace the document with ``workflow``, clear the undo history and emit :attr:`sig_reset`.

        ``dirty`` marks the loaded content as unsaved, as a restored recovery file is.
        """
        self._loading = True
        try:
            self.undo_stack.clear()
            self._workflow = workflow
            self.path = path
            self._index = None
            self._drag_serial += 1
            self._forced_dirty = dirty
            self.undo_stack.setClean()
        finally:
            self._loading = False
        logger.info("document %s (%s) loaded from %s", workflow.name, workflow.id, path or "memory")
        self.sig_reset.emit()
        self.sig_changed.emit()
        self._update_dirty()

    def save(self, path: Path | str | None = None) -> Path:
        """Write the workflow atomically to ``path`` (default: the document's path) and mark it clean.

        Raise :class:`EditError` when there is no path, and OSError when the file cannot be written.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise EditError("the workflow has no file yet; save it with a path (Save As)")
        save_workflow(self._workflow, target)
        self.path = target
        self.mark_clean()
        logger.info("saved workflow %s to %s", self._workflow.id, target)
        self.sig_saved.emit(str(target))
        return target

    def mark_clean(self) -> None:
        """Record the current state as the saved one."""
        self._forced_dirty = False
        self.undo_stack.setClean()
        self._update_dirty()

    def end_move(self) -> None:
        """End the current drag, so the next ``move_steps(..., merge=True)`` starts a new undo step."""
        self._drag_serial += 1

    @contextmanager
    def macro(self, text: str) -> Iterator[None]:
        """Group the edits made inside the ``with`` block into one undo step named ``text``.

        When the block raises, the outermost macro undoes the edits it made and leaves no undo
        step behind, so a rejected edit neither half-applies nor marks the document changed.
        A read-only document raises :class:`EditError` before the block runs.
        """
        self._check_writable()
        start = self.undo_stack.index()
        self.undo_stack.beginMacro(text)
        self._macro_depth += 1
        try:
            yield
        except BaseException:
            self._end_macro()
            if self._macro_depth == 0 and self.undo_stack.index() == start + 1:
                self._drop_last_command()
            raise
        self._end_macro()

    def _end_macro(self) -> None:
        self._macro_depth -= 1
        self.undo_stack.endMacro()

    def _drop_last_command(self) -> None:
        # Qt 6 skips an obsolete command's redo() and deletes the command, so undo, mark it, then "redo" to drop it.
        self.undo_stack.undo()
        command = self.undo_stack.command(self.undo_stack.index())
        if command is None:
            return
        command.setObsolete(True)
        self.undo_stack.redo()

    def push(self, command: QUndoCommand) -> None:
        """Push ``command`` (which runs it) unless the document is read-only."""
        self._check_writable()
        self.undo_stack.push(command)

    def _check_writable(self) -> None:
        if self.read_only:
            raise EditError("the document is read-only (it shows a stored version); open the workflow file to edit it")

    def _on_undo_stack_index_changed(self, _index: int) -> None:
        # QUndoStack emits indexChanged after a push (merged or not), undo, redo and a finished macro.
        if not self._loading:
            self.sig_changed.emit()

    def _on_undo_stack_clean_changed(self, _clean: bool) -> None:
        # During load the old content is being replaced, not saved, so its dirty state is settled after the reset.
        if not self._loading:
            self._update_dirty()

    def _update_dirty(self) -> None:
        dirty = self.is_dirty()
        if dirty != self._last_dirty:
            self._last_dirty = dirty
            self.sig_dirty_changed.emit(dirty)

    # -- edits (each pushes one undo command) ------------------------------------------------

    def add_step(self, step: AnyStep, position: tuple[float, float], container_id: str | None = None) -> str:
        """Add ``step`` at ``position`` (top level, or in the body of the ``for_each`` ``container_id``); return its id."""
        self._check_writable()
        if self.has_step(step.id):
            raise EditError(f"step id '{step.id}' is already taken by another step; choose a different id")
        taken = set(self._step_index())
        clashes = [step_id for step_id in _ids_with_bodies(step)[1:] if step_id in taken]
        if clashes:
            raise EditError(f"body step id '{clashes[0]}' is already taken by another step; choose a different id")
        steps = self.scope_steps(container_id)
        placed = step.model_copy(update={"position": Position(x=float(position[0]), y=float(position[1]))})
        slot = StepSlot(container_id, len(steps), placed)
        self.push(AddStepsCommand(self, [slot], f"Add step {step.id}"))
        return step.id

    def remove_steps(self, step_ids: Iterable[str]) -> None:
        """Remove steps (with their bodies, explicit edges and group memberships); unknown ids raise EditError."""
        ids = list(dict.fromkeys(step_ids))
        if not ids:
            return
        for step_id in ids:
            self.slot(step_id)
        text = f"Remove step {ids[0]}" if len(ids) == 1 else f"Remove {len(ids)} steps"
        self.push(RemoveStepsCommand(self, ids, text))

    def move_steps(self, positions: dict[str, tuple[float, float]], *, merge: bool = False) -> None:
        """Move steps to ``positions`` (model coordinates).

        With ``merge`` true, successive calls until :meth:`end_move` form one undo step, as a drag does.
        """
        if not positions:
            return
        self._check_writable()
        old = {step_id: self.find_step(step_id).position for step_id in positions}
        text = f"Move step {next(iter(positions))}" if len(positions) == 1 else f"Move {len(positions)} steps"
        serial = self._drag_serial if merge else None
        self.push(MoveStepsCommand(self, old, positions_of(positions), text, drag_serial=serial))

    def apply_positions(self, positions: dict[str, tuple[float, float]], text: str = "Auto-layout") -> None:
        """Move many steps at once as one undo step named ``text`` (auto-layout, align)."""
        if not positions:
            return
        self._check_writable()
        old = {step_id: self.find_step(step_id).position for step_id in positions}
        self.push(MoveStepsCommand(self, old, positions_of(positions), text))

    # The editor contract names these two edits connect/disconnect, which shadows QObject's methods of
    # the same names on this class. Qt signals keep their own connect(), so signal wiring is unaffected.
    def connect(self, source: str, target: str) -> None:  # type: ignore[override]
        """Add the explicit edge ``source`` -> ``target``; both steps must be in the same scope."""
        container_id = self._edge_scope(source, target)
        edges = self.scope_edges(container_id)
        if any((edge.source, edge.target) == (source, target) for edge in edges):
            raise EditError(f"steps '{source}' and '{target}' are already connected")
        if _reaches(edges, target, source):
            raise EditError(
                f"connecting '{source}' to '{target}' would create a cycle, because '{target}' already "
                f"leads to '{source}'; remove an edge of that path first"
            )
        self.push(ConnectCommand(self, container_id, Edge(source=source, target=target)))

    def disconnect(self, source: str, target: str) -> None:  # type: ignore[override]
        """Remove the explicit edge ``source`` -> ``target``; raise EditError when there is none."""
        container_id = self._edge_scope(source, target)
        if not any((edge.source, edge.target) == (source, target) for edge in self.scope_edges(container_id)):
            raise EditError(f"there is no edge from '{source}' to '{target}' to remove")
        self.push(DisconnectCommand(self, container_id, Edge(source=source, target=target)))

    def splice(self, step: AnyStep, source: str, target: str, position: tuple[float, float]) -> str:
        """Insert ``step`` into the edge ``source`` -> ``target`` (one undo step); return its id."""
        container_id = self._edge_scope(source, target)
        if not any((edge.source, edge.target) == (source, target) for edge in self.scope_edges(container_id)):
            raise EditError(f"there is no edge from '{source}' to '{target}' to insert a step into")
        if self.has_step(step.id):
            raise EditError(f"step id '{step.id}' is already taken by another step; choose a different id")
        placed = step.model_copy(update={"position": Position(x=float(position[0]), y=float(position[1]))})
        slot = StepSlot(container_id, len(self.scope_steps(container_id)), placed)
        parts: list[QUndoCommand] = [
            AddStepsCommand(self, [slot], f"Add step {step.id}"),
            DisconnectCommand(self, container_id, Edge(source=source, target=target)),
            ConnectCommand(self, container_id, Edge(source=source, target=step.id)),
            ConnectCommand(self, container_id, Edge(source=step.id, target=target)),
        ]
        self.push(CompositeCommand(f"Insert {step.id} between {source} and {target}", parts))
        return step.id

    def set_step_field(self, step_id: str, field_path: str, value: Any) -> None:
        """Set one field of a step by dotted path (``config.arguments.query``, ``title``, ``retry.max_attempts``)."""
        self._check_writable()
        old = self.find_step(step_id)
        new = with_field(old, field_path, value)
        self.push(SetStepsCommand(self, [(old, new)], f"Edit {field_path} of {step_id}"))

    def set_step(self, step_id: str, new_step: AnyStep) -> None:
        """Replace step ``step_id`` by ``new_step``, which must keep the id (use :meth:`rename_step` for that)."""
        self._check_writable()
        if new_step.id != step_id:
            raise EditError(
                f"set_step cannot change the id of '{step_id}' to '{new_step.id}'; rename the step instead"
            )
        old = self.find_step(step_id)
        others = set(self._step_index()) - set(_ids_with_bodies(old))
        clashes = [body_id for body_id in _ids_with_bodies(new_step)[1:] if body_id in others]
        if clashes:
            raise EditError(f"body step id '{clashes[0]}' is already taken by another step; choose a different id")
        self.push(SetStepsCommand(self, [(old, new_step)], f"Edit step {step_id}"))

    def rename_step(self, old_id: str, new_id: str) -> None:
        """Rename a step and rewrite every edge, group and template reference to it."""
        self._check_writable()
        self.slot(old_id)
        if new_id == old_id:
            return
        check_new_step_id(new_id, self._step_index())
        self.push(RenameStepCommand(self, old_id, new_id))

    def duplicate(self, step_ids: Iterable[str], offset: tuple[float, float] = DUPLICATE_OFFSET) -> list[str]:
        """Copy steps (with the edges among them) beside the originals; return the new top-level ids."""
        ids = list(dict.fromkeys(step_ids))
        if not ids:
            return []
        scopes = {self.slot(step_id).container_id for step_id in ids}
        if len(scopes) != 1:
            raise EditError("duplicate steps of one scope at a time: the selection mixes top-level and body steps")
        fragment = copy_fragment(self._workflow, ids)
        return self._paste(fragment, offset, scopes.pop(), "Duplicate")

    def paste(
        self, fragment: Fragment, position: tuple[float, float], container_id: str | None = None
    ) -> list[str]:
        """Paste ``fragment`` with its top-left step at ``position``; return the new top-level step ids."""
        positions = [step.position for step in fragment.steps if step.position is not None]
        left = min((p.x for p in positions), default=0.0)
        top = min((p.y for p in positions), default=0.0)
        return self._paste(fragment, (position[0] - left, position[1] - top), container_id, "Paste")

    def _paste(self, fragment: Fragment, offset: tuple[float, float], container_id: str | None, verb: str) -> list[str]:
        self._check_writable()
        steps = self.scope_steps(container_id)
        new_steps, edges, _id_map = prepare_paste(self._workflow, fragment, offset)
        slots = [StepSlot(container_id, len(steps) + index, step) for index, step in enumerate(new_steps)]
        notes = shifted_notes(fragment.notes, offset)
        text = f"{verb} {len(slots)} step(s)" if slots else f"{verb} {len(notes)} note(s)"
        self.push(AddStepsCommand(self, slots, text, edges={container_id: edges}, notes=notes))
        return [slot.step.id for slot in slots]

    def add_note(self, text: str, position: tuple[float, float]) -> str:
        """Add a sticky note at ``position``; return its id."""
        self._check_writable()
        note = StickyNote(text=text, position=Position(x=float(position[0]), y=float(position[1])))
        self.push(SetNotesCommand(self, [*self._workflow.notes, note], "Add note"))
        return note.id

    def set_note(
        self,
        note_id: str,
        text: str | None = None,
        position: tuple[float, float] | None = None,
        size: tuple[float, float] | None = None,
    ) -> None:
        """Change the text, position and/or size (width, height) of a note; None leaves a value as it is."""
        self._check_writable()
        notes = list(self._workflow.notes)
        index = self._note_index(note_id)
        update: dict[str, Any] = {}
        if text is not None:
            update["text"] = text
        if position is not None:
            update["position"] = Position(x=float(position[0]), y=float(position[1]))
        if size is not None:
            if size[0] <= 0 or size[1] <= 0:
                raise EditError(f"invalid note size {size!r}: width and height must be greater than 0")
            update["width"], update["height"] = float(size[0]), float(size[1])
        if not update:
            return
        notes[index] = notes[index].model_copy(update=update)
        self.push(SetNotesCommand(self, notes, "Edit note"))

    def remove_notes(self, note_ids: Iterable[str]) -> None:
        """Remove notes by id; unknown ids raise EditError."""
        ids = set(note_ids)
        if not ids:
            return
        for note_id in ids:
            self._note_index(note_id)
        kept = [note for note in self._workflow.notes if note.id not in ids]
        self.push(SetNotesCommand(self, kept, f"Remove {len(ids)} note(s)"))

    def group(self, step_ids: Iterable[str], title: str) -> str:
        """Put steps into a new titled group; return the group id."""
        self._check_writable()
        ids = list(dict.fromkeys(step_ids))
        if not ids:
            raise EditError("a group needs at least one step; select steps first")
        for step_id in ids:
            self.slot(step_id)
        group = Group(title=title, step_ids=ids)
        self.push(SetGroupsCommand(self, [*self._workflow.groups, group], f"Group {len(ids)} step(s)"))
        return group.id

    def ungroup(self, group_id: str) -> None:
        """Remove a group (its steps stay); raise EditError when no group has ``group_id``."""
        self._check_writable()
        kept = [group for group in self._workflow.groups if group.id != group_id]
        if len(kept) == len(self._workflow.groups):
            raise EditError(f"no group with id '{group_id}'; check the id")
        self.push(SetGroupsCommand(self, kept, "Ungroup"))

    def set_layout_pinned(self, step_ids: Iterable[str], pinned: bool) -> None:
        """Pin steps so auto-layout keeps them in place, or unpin them."""
        self._check_writable()
        pairs: list[tuple[AnyStep, AnyStep]] = []
        for step_id in dict.fromkeys(step_ids):
            step = self.find_step(step_id)
            if step.layout_pinned != pinned:
                pairs.append((step, step.model_copy(update={"layout_pinned": pinned})))
        if pairs:
            verb = "Pin" if pinned else "Unpin"
            self.push(SetStepsCommand(self, pairs, f"{verb} {len(pairs)} step(s) in the layout"))

    def _edge_scope(self, source: str, target: str) -> str | None:
        self._check_writable()
        if source == target:
            raise EditError(f"cannot connect step '{source}' to itself")
        source_scope = self.slot(source).container_id
        target_scope = self.slot(target).container_id
        if source_scope != target_scope:
            raise EditError(
                f"steps '{source}' and '{target}' are in different scopes (a for_each body and outside it); "
                "connect steps of the same level, or read the result with a template"
            )
        return source_scope

    def _note_index(self, note_id: str) -> int:
        for index, note in enumerate(self._workflow.notes):
            if note.id == note_id:
                return index
        raise EditError(f"no note with id '{note_id}'; check the id")

    # -- lookups ---------------------------------------------------------------------------

    def find_step(self, step_id: str) -> AnyStep:
        """Return the step with ``step_id`` at any depth; raise :class:`EditError` naming the id if absent."""
        return self.slot(step_id).step

    def has_step(self, step_id: str) -> bool:
        return step_id in self._step_index()

    def slot(self, step_id: str) -> StepSlot:
        """Return where ``step_id`` sits; raise :class:`EditError` naming the id if absent."""
        location = self._step_index().get(step_id)
        if location is None:
            raise EditError(f"no step with id '{step_id}' in workflow '{self._workflow.name}'; check the id")
        container_id, index = location
        return StepSlot(container_id, index, self.scope_steps(container_id)[index])

    def scope_steps(self, container_id: str | None) -> list[AnyStep]:
        """Return the live step list of the top level (None) or of the ``for_each`` ``container_id``."""
        if container_id is None:
            return self._workflow.steps
        container = self.find_step(container_id)
        if not isinstance(container, ForEachStep):
            raise EditError(f"step '{container_id}' is a {container.type} step, not a for_each, so it has no body")
        return container.config.steps

    def scope_edges(self, container_id: str | None) -> list[Edge]:
        """Return the live explicit edge list of the top level (None) or of a ``for_each`` body."""
        if container_id is None:
            return self._workflow.edges
        container = self.find_step(container_id)
        assert isinstance(container, ForEachStep)
        return container.config.edges

    def _step_index(self) -> dict[str, tuple[str | None, int]]:
        if self._index is None:
            index: dict[str, tuple[str | None, int]] = {}
            self._fill_index(index, self._workflow.steps, None)
            self._index = index
        return self._index

    def _fill_index(self, index: dict[str, tuple[str | None, int]], steps: list[AnyStep], owner: str | None) -> None:
        for position, step in enumerate(steps):
            index[step.id] = (owner, position)
            if isinstance(step, ForEachStep):
                self._fill_index(index, step.config.steps, step.id)

    # -- primitives used by undo commands ---------------------------------------------------

    def _apply_insert(self, slots: Iterable[StepSlot]) -> None:
        """Insert steps at their slots; the slots of one list must come in ascending index order."""
        added: list[str] = []
        for slot in slots:
            self.scope_steps(slot.container_id).insert(slot.index, slot.step)
            self._index = None
            added.extend(_ids_with_bodies(slot.step))
        self.sig_steps_added.emit(added)

    def _apply_take(self, step_ids: Iterable[str]) -> list[StepSlot]:
        """Remove steps and return their slots in ascending index order, ready for :meth:`_apply_insert`."""
        slots = sorted((self.slot(step_id) for step_id in step_ids), key=lambda s: (s.container_id or "", s.index))
        removed: list[str] = []
        for slot in reversed(slots):
            del self.scope_steps(slot.container_id)[slot.index]
            self._index = None
            removed.extend(_ids_with_bodies(slot.step))
        self.sig_steps_removed.emit(removed)
        return slots

    def _apply_replace(self, pairs: Iterable[tuple[AnyStep, AnyStep]]) -> None:
        """Put each new step where the old one (found by the old step's id) is; emit a change or rename."""
        changed: list[str] = []
        for old, new in pairs:
            slot = self.slot(old.id)
            self.scope_steps(slot.container_id)[slot.index] = new
            if new.id != old.id or isinstance(old, ForEachStep) or isinstance(new, ForEachStep):
                self._index = None
            if new.id != old.id:
                self.sig_step_renamed.emit(old.id, new.id)
            else:
                changed.append(new.id)
        if changed:
            self.sig_steps_changed.emit(changed)

    def _apply_positions(self, positions: dict[str, Position | None]) -> None:
        for step_id, position in positions.items():
            slot = self.slot(step_id)
            self.scope_steps(slot.container_id)[slot.index] = slot.step.model_copy(update={"position": position})
        self.sig_steps_moved.emit(list(positions))

    def _apply_edges(self, container_id: str | None, edges: list[Edge]) -> None:
        self.scope_edges(container_id)[:] = edges
        self.sig_edges_changed.emit()

    def _apply_notes(self, notes: list[StickyNote]) -> None:
        self._workflow.notes[:] = notes
        self.sig_notes_changed.emit()

    def _apply_groups(self, groups: list[Group]) -> None:
        self._workflow.groups[:] = groups
        self.sig_groups_changed.emit()



def _ids_with_bodies(step: AnyStep) -> list[str]:
    ids = [step.id]
    if isinstance(step, ForEachStep):
        for child in step.config.steps:
            ids.extend(_ids_with_bodies(child))
    return ids


def _reaches(edges: list[Edge], start: str, goal: str) -> bool:
    """Return True when explicit ``edges`` lead from ``start`` to ``goal``."""
    successors: dict[str, list[str]] = {}
    for edge in edges:
        successors.setdefault(edge.source, []).append(edge.target)
    seen: set[str] = set()
    pending = [start]
    while pending:
        current = pending.pop()
        if current == goal:
            return True
        if current not in seen:
            seen.add(current)
            pending.extend(successors.get(current, []))
    return False


def positions_of(data: dict[str, tuple[float, float]]) -> dict[str, Position | None]:
    """Convert ``{id: (x, y)}`` into model positions."""
    return {step_id: Position(x=float(x), y=float(y)) for step_id, (x, y) in data.items()}

