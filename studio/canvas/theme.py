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
