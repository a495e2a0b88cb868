"""Autocomplete of ``{{steps.*}}``, ``{{input.*}}`` and ``{{item}}`` paths in template fields."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QStringListModel, Qt
from PySide6.QtWidgets import QCompleter, QLineEdit, QPlainTextEdit

from studio.model.output_shapes import Completion, completions

logger = logging.getLogger(__name__)

CandidateSource = Callable[[str], list[Completion]]
"""Returns the completion candidates for the text typed after ``{{``."""


def open_template_prefix(text: str, cursor: int) -> tuple[int, str] | None:
    """Return ``(start, prefix)`` of the ``{{`` expression the cursor is in, or None outside one.

    ``start`` is the index just after ``{{``; ``prefix`` runs from there to the cursor.
    """
    before = text[:cursor]
    opening = before.rfind("{{")
    if opening < 0 or "}}" in before[opening:]:
        return None
    start = opening + 2
    return start, before[start:]


class TemplateCompleter(QObject):
    """A completion popup for one line edit or plain text editor holding templates.

    The popup opens while the cursor is inside an unclosed ``{{`` and lists what
    :func:`studio.model.output_shapes.completions` returns for the text typed so far. Choosing a
    candidate replaces that text and adds the closing ``}}`` when it is missing.
    """

    def __init__(self, widget: QLineEdit | QPlainTextEdit, source: CandidateSource) -> None:
        super().__init__(widget)
        self.widget = widget
        self.source = source
        self.model = QStringListModel(self)
        self.completer = QCompleter(self.model, self)
        self.completer.setWidget(widget)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseSensitive)
        self.completer.activated.connect(self.insert_completion)
        self._start: int | None = None
        self._details: dict[str, str] = {}
        if isinstance(widget, QLineEdit):
            widget.textEdited.connect(self.update_popup)
        else:
            widget.textChanged.connect(self.update_popup)

    def _text_and_cursor(self) -> tuple[str, int]:
        widget = self.widget
        if isinstance(widget, QLineEdit):
            return widget.text(), widget.cursorPosition()
        return widget.toPlainText(), widget.textCursor().position()

    def _hide_popup(self) -> None:
        popup = self.completer.popup()
        if popup is not None:
            popup.hide()

    def close(self) -> None:
        """Hide the popup and stop following the widget, before the widget goes away."""
        self._hide_popup()
        if isinstance(self.widget, QLineEdit):
            self.widget.textEdited.disconnect(self.update_popup)
        else:
            self.widget.textChanged.disconnect(self.update_popup)

    def candidates(self) -> list[str]:
        """Return the candidates the popup lists now."""
        return list(self.model.stringList())

    def update_popup(self) -> None:
        """Recompute the candidates for the cursor position and show or hide the popup."""
        text, cursor = self._text_and_cursor()
        found = open_template_prefix(text, cursor)
        if found is None:
            self._start = None
            self.model.setStringList([])
            self._hide_popup()
            return
        self._start, prefix = found
        try:
            candidates = self.source(prefix)
        except KeyError as problem:
            logger.debug("no completions: %s", problem)
            candidates = []
        self._details = {candidate.text: f"{candidate.kind}  {candidate.detail}".strip() for candidate in candidates}
        self.model.setStringList([candidate.text for candidate in candidates])
        if not candidates:
            self._hide_popup()
            return
        self.completer.setCompletionPrefix(prefix)
        popup = self.completer.popup()
        assert popup is not None
        popup.setToolTip("\n".join(f"{text}: {detail}" for text, detail in self._details.items()))
        rect = self.widget.cursorRect() if isinstance(self.widget, QPlainTextEdit) else self.widget.rect()
        rect.setWidth(max(320, popup.sizeHintForColumn(0) + 24))
        self.completer.complete(rect)

    def insert_completion(self, completion: str) -> None:
        """Replace the text typed after ``{{`` with ``completion`` and close the template if it is open."""
        if self._start is None:
            return
        text, cursor = self._text_and_cursor()
        closing = "" if text[cursor:].lstrip().startswith("}}") else "}}"
        new_text = text[: self._start] + completion + closing + text[cursor:]
        new_cursor = self._start + len(completion) + len(closing)
        widget = self.widget
        if isinstance(widget, QLineEdit):
            widget.setText(new_text)
            widget.setCursorPosition(new_cursor)
        else:
            widget.setPlainText(new_text)
            text_cursor = widget.textCursor()
            text_cursor.setPosition(new_cursor)
            widget.setTextCursor(text_cursor)
        self._start = None
        self._hide_popup()


def attach_template_completer(
    widget: QLineEdit | QPlainTextEdit,
    candidates: Callable[..., list[Completion]] = completions,
    *,
    context: Callable[[], tuple[object, str, dict[str, object]]],
) -> TemplateCompleter:
    """Attach a :class:`TemplateCompleter` whose candidates come from ``context()``.

    ``context`` returns ``(workflow, edited step id, keyword arguments of completions())`` at the
    moment the user types, so the candidates follow the current document.
    """

    def source(prefix: str) -> list[Completion]:
        workflow, step_id, options = context()
        return candidates(workflow, step_id, prefix, **options)

    return TemplateCompleter(widget, source)
