"""Colours and fonts of canvas items: fixed status colours plus the application palette for the rest."""

from __future__ import annotations

from PySide6.QtGui import QColor, QGuiApplication, QPalette

STEP_STATUSES: tuple[str, ...] = ("pending", "running", "completed", "failed", "retrying", "waiting", "skipped")
"""Statuses a node can show. ``pending`` is the state before a run reaches the step."""

# Mid-saturation colours that keep white badge text readable and stand out on light and dark bases.
_STATUS_COLORS: dict[str, str] = {
    "pending": "#8a9099",
    "running": "#2f7fd8",
    "completed": "#2e9d57",
    "failed": "#d64545",
    "retrying": "#e08a1e",
    "waiting": "#8e5bd6",
    "skipped": "#6f7680",
}


def status_color(status: str) -> QColor:
    """Return the badge colour of ``status``. Unknown statuses get the ``pending`` colour."""
    return QColor(_STATUS_COLORS.get(status, _STATUS_COLORS["pending"]))


def palette() -> QPalette:
    """Return the application palette, which follows the system light or dark theme."""
    return QGuiApplication.palette()


def is_dark(current: QPalette | None = None) -> bool:
    """Return True when the window colour of the palette is dark."""
    window = (current or palette()).color(QPalette.ColorRole.Window)
    return window.lightness() < 128


def node_fill(current: QPalette) -> QColor:
    """Return the fill colour of a step box: the palette's base, nudged away from the canvas colour."""
    base = current.color(QPalette.ColorRole.Base)
    return base.lighter(135) if is_dark(current) else base


def container_fill(current: QPalette) -> QColor:
    """Return the fill colour of a ``for_each`` container, a translucent tint of the palette's midtone."""
    color = QColor(current.color(QPalette.ColorRole.Mid))
    color.setAlpha(48)
    return color


def secondary_text(current: QPalette) -> QColor:
    """Return the colour for type labels and details, dimmer than the main text."""
    color = QColor(current.color(QPalette.ColorRole.Text))
    color.setAlphaF(0.65)
    return color


def port_color(current: QPalette, *, highlighted: bool = False) -> QColor:
    """Return the fill colour of a port circle, the highlight colour while a drag can drop on it."""
    if highlighted:
        return current.color(QPalette.ColorRole.Highlight)
    return current.color(QPalette.ColorRole.Mid)


def edge_color(current: QPalette, *, implied: bool, selected: bool = False) -> QColor:
    """Return the stroke colour of an edge: the highlight when selected, dimmer when only implied."""
    if selected:
        return current.color(QPalette.ColorRole.Highlight)
    color = QColor(current.color(QPalette.ColorRole.Text))
    color.setAlphaF(0.55 if implied else 0.8)
    return color


def grid_color(current: QPalette) -> QColor:
    """Return the colour of the background grid dots, a faint tint of the text colour."""
    color = QColor(current.color(QPalette.ColorRole.Text))
    color.setAlphaF(0.07)
    return color


def canvas_background(current: QPalette) -> QColor:
    """Return the canvas background: the palette's window colour, slightly darker in light themes."""
    window = current.color(QPalette.ColorRole.Window)
    return window.darker(115) if is_dark(current) else window.darker(104)


_PROBLEM_COLORS: dict[str, str] = {"error": "#d64545", "warning": "#e0a21e", "info": "#2f7fd8"}
PROBLEM_SEVERITIES: tuple[str, ...] = tuple(_PROBLEM_COLORS)
"""Severities a node's problems badge can show, most severe first."""


def problem_color(severity: str) -> QColor:
    """Return the badge colour of a validation problem ``severity``; unknown ones get the error colour."""
    return QColor(_PROBLEM_COLORS.get(severity, _PROBLEM_COLORS["error"]))


def note_fill(color: str, current: QPalette) -> QColor:
    """Return the fill of a sticky note of ``color``, darkened in dark themes so text stays readable."""
    fill = QColor(color)
    if not fill.isValid():
        fill = QColor("#fff3a8")
    return fill.darker(260) if is_dark(current) else fill


def note_text(current: QPalette) -> QColor:
    """Return the text colour on sticky notes."""
    return QColor("#f0f0f0") if is_dark(current) else QColor("#202020")


def group_fill(current: QPalette) -> QColor:
    """Return the translucent fill of a group frame, a tint of the highlight colour."""
    color = QColor(current.color(QPalette.ColorRole.Highlight))
    color.setAlpha(28)
    return color
