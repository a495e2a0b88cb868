"""Qt-free timeline data: lanes and time segments folded from a run's events, and their geometry."""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.engine.events import EventType, RunEvent

_ITEM_KEY = re.compile(r"^(?P<container>.+)\[(?P<index>\d+)\]$")

STATUS_COLORS: dict[str, str] = {
    "pending": "#8a9099",
    "created": "#8a9099",
    "running": "#2f7fd8",
    "completed": "#2e9d57",
    "failed": "#d64545",
    "retrying": "#e08a1e",
    "paused": "#e08a1e",
    "waiting": "#8e5bd6",
    "skipped": "#6f7680",
    "cancelled": "#6f7680",
    "interrupted": "#6f7680",
    "stopped": "#6f7680",
}
"""Colour of each step and run status, as hex RGB.

NOTE: these repeat the canvas badge colours, because the layer contract keeps panels from importing
``studio.canvas``; change both together.
"""

TERMINAL_RUN_EVENTS = {"run_completed": "completed", "run_failed": "failed", "run_stopped": "stopped"}


@dataclass
class Segment:
    """One span of a step execution on the time axis.

    ``kind`` is ``attempt`` (the step ran), ``retry_delay`` (the wait before the next attempt),
    ``waiting`` (a human task was open), ``skipped`` (a zero-length marker), ``reused`` (a re-run
    took the recorded result; as long as the recorded attempt) or ``pinned`` (a pinned output). ``end`` is None while
    the span is open; ``planned_end`` is the scheduled end of a retry delay.
    """

    step_key: str
    step_id: str
    kind: str
    status: str
    start: float
    end: float | None = None
    attempt: int = 1
    planned_end: float | None = None


@dataclass
class Lane:
    """One row of the timeline.

    ``kind`` is ``step`` (a top-level step), ``container`` (a for_each, which has item lanes below
    it) or ``item`` (one for_each item, showing the bars of all its body steps). ``step_keys`` are
    the step executions whose segments the lane shows.
    """

    key: str
    label: str
    kind: str
    parent: str | None = None
    index: int = 0
    step_keys: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VisibleLane:
    lane: Lane
    depth: int
    collapsed: bool


def event_fields(event: RunEvent | Mapping[str, Any]) -> tuple[str, str | None, float, Mapping[str, Any]]:
    """Return ``(type, step_key, at, data)`` of a live :class:`RunEvent` or of a journaled event dict."""
    if isinstance(event, RunEvent):
        return event.type.value, event.step_key, event.at, event.data
    data = event.get("data")
    return str(event["type"]), event.get("step_key"), float(event["at"]), data if isinstance(data, Mapping) else {}


def step_id_of(step_key: str) -> str:
    """Return the step id of a step key: ``loop[2].square`` gives ``square``."""
    return step_key.rpartition(".")[2]


def item_key_of(step_key: str) -> tuple[str, str, int] | None:
    """Return ``(item key, container key, index)`` for a key inside a for_each body, else None."""
    prefix, dot, _step = step_key.rpartition(".")
    if not dot:
        return None
    match = _ITEM_KEY.match(prefix)
    if match is None:
        return None
    return prefix, match.group("container"), int(match.group("index"))


class TimelineModel:
    """Folds the events of one run into lanes of segments.

    Feed it journaled events from the store (a finished run) and then live events, in ``seq``
    order. Events it has seen already (by ``seq``) are ignored, so overlaps are harmless.
    Times are Unix seconds.
    """

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.run_start: float | None = None
        self.run_end: float | None = None
        self.run_status = "created"
        self.last_at: float | None = None
        self.pauses: list[list[float | None]] = []
        """Spans ``[start, end]`` in which the run was paused; ``end`` is None while paused."""
        self.segments: dict[str, list[Segment]] = {}
        self.lanes: dict[str, Lane] = {}
        self.roots: list[str] = []
        self.collapsed: set[str] = set()
        self.revision = 0
        """Increases on every applied event and every collapse or expand."""
        self._last_seq = 0
        self._layout_revision = 0
        """Increases when lanes are added, collapsed or expanded; keys the cache of visible lanes."""
        self._visible_cache: tuple[int, list[VisibleLane]] = (-1, [])

    # -- folding events ---------------------------------------------------------------------

    def apply_all(self, events: Iterable[RunEvent | Mapping[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: RunEvent | Mapping[str, Any]) -> None:
        """Update the lanes from one event of this run."""
        seq = event.seq if isinstance(event, RunEvent) else int(event.get("seq") or 0)
        if seq and seq <= self._last_seq:
            return
        self._last_seq = max(self._last_seq, seq)
        kind, step_key, at, data = event_fields(event)
        self.last_at = at if self.last_at is None else max(self.last_at, at)
        self.revision += 1
        if step_key is None:
            self._apply_run_event(kind, at, data)
        else:
            self._apply_step_event(kind, step_key, at, data)

    def _apply_run_event(self, kind: str, at: float, data: Mapping[str, Any]) -> None:
        if kind in ("run_created", "run_started") and self.run_start is None:
            self.run_start = at
        if kind == "run_started":
            self.run_status = "running"
        elif kind == "run_paused":
            self.run_status = "paused"
            self.pauses.append([at, None])
        elif kind == "run_resumed":
            self.run_status = "running"
            self._close_pause(at)
            interrupted = data.get("interrupted_steps")
            for key in interrupted if isinstance(interrupted, list) else []:
                self._close_open(str(key), at, "interrupted")
        elif kind == "run_waiting":
            self.run_status = "waiting"
        elif kind in TERMINAL_RUN_EVENTS:
            self.run_status = TERMINAL_RUN_EVENTS[kind]
            self.run_end = at
            self._close_pause(at)
            cancelled = data.get("cancelled")
            cancelled_keys = {str(key) for key in cancelled} if isinstance(cancelled, list) else set()
            for key in list(self.segments):
                self._close_open(key, at, "cancelled" if key in cancelled_keys else self.run_status)

    def _apply_step_event(self, kind: str, key: str, at: float, data: Mapping[str, Any]) -> None:
        self._ensure_lane(key, at)
        attempt = data.get("attempt")
        attempt_number = attempt if isinstance(attempt, int) else self._last_attempt(key)
        if kind in ("step_completed", "step_failed") and self._is_seeded(data) and not self._has_open(key):
            # A re-run's reused result or a pinned output: the step did not run in this run, so it
            # gets a faded bar as long as the recorded attempt took (zero for pins).
            duration = data.get("duration_s")
            length = float(duration) if isinstance(duration, int | float) and duration > 0 else 0.0
            status = "completed" if kind == "step_completed" else "tolerated"
            seeded = "pinned" if data.get("pinned") is True else "reused"
            self._add(Segment(key, step_id_of(key), seeded, status, at, at + length, attempt_number))
            return
        if kind == "step_started":
            self._close_open(key, at, "completed")
            self._open(key, "attempt", "running", at, attempt_number)
        elif kind == "step_completed":
            self._close_open(key, at, "completed")
        elif kind == "step_failed":
            error = data.get("error")
            cancelled = isinstance(error, Mapping) and error.get("kind") == "cancelled"
            self._close_open(key, at, "cancelled" if cancelled else "failed")
            if cancelled and not self.segments.get(key):
                self._add(Segment(key, step_id_of(key), "skipped", "cancelled", at, at, attempt_number))
        elif kind == "step_retrying":
            self._close_open(key, at, "failed")
            delay = data.get("delay_s")
            planned = at + float(delay) if isinstance(delay, int | float) else None
            segment = self._open(key, "retry_delay", "retrying", at, attempt_number)
            segment.planned_end = planned
        elif kind == "step_waiting":
            self._close_open(key, at, "completed")
            self._open(key, "waiting", "waiting", at, attempt_number)
        elif kind == "task_resolved":
            self._close_open(key, at, "completed")
            self._open(key, "attempt", "running", at, attempt_number)
        elif kind == "step_skipped":
            self._add(Segment(key, step_id_of(key), "skipped", "skipped", at, at, attempt_number))

    @staticmethod
    def _is_seeded(data: Mapping[str, Any]) -> bool:
        return bool(data.get("reused_from")) or data.get("pinned") is True

    def _has_open(self, key: str) -> bool:
        segments = self.segments.get(key)
        if not segments:
            return False
        return segments[-1].end is None

    def _last_attempt(self, key: str) -> int:
        segments = self.segments.get(key)
        return segments[-1].attempt if segments else 1

    def _open(self, key: str, kind: str, status: str, at: float, attempt: int) -> Segment:
        segment = Segment(key, step_id_of(key), kind, status, at, None, attempt)
        self._add(segment)
        return segment

    def _add(self, segment: Segment) -> None:
        self.segments.setdefault(segment.step_key, []).append(segment)

    def _close_open(self, key: str, at: float, status: str) -> None:
        """End the open segment of ``key``, if any, at ``at``. Open waits keep their own status."""
        segments = self.segments.get(key)
        if not segments or segments[-1].end is not None:
            return
        last = segments[-1]
        last.end = max(at, last.start)
        if last.kind == "attempt" or status in ("cancelled", "interrupted", "stopped"):
            last.status = status

    def _close_pause(self, at: float) -> None:
        if self.pauses and self.pauses[-1][1] is None:
            self.pauses[-1][1] = at

    # -- lanes ------------------------------------------------------------------------------

    def _ensure_lane(self, key: str, at: float) -> None:
        item = item_key_of(key)
        if item is None:
            lane = self.lanes.get(key)
            if lane is None:
                lane = Lane(key, key, "step")
                self.lanes[key] = lane
                self.roots.append(key)
                self._layout_revision += 1
            if key not in lane.step_keys:
                lane.step_keys.append(key)
            return
        item_key, container_key, index = item
        container = self._ensure_container(container_key, at)
        lane = self.lanes.get(item_key)
        if lane is None:
            lane = Lane(item_key, f"[{index}]", "item", parent=container_key, index=index)
            self.lanes[item_key] = lane
            bisect.insort(container.children, item_key, key=lambda child: self.lanes[child].index)
            self._layout_revision += 1
        if key not in lane.step_keys:
            lane.step_keys.append(key)

    def _ensure_container(self, container_key: str, at: float) -> Lane:
        lane = self.lanes.get(container_key)
        if lane is not None:
            lane.kind = "container"
            return lane
        item = item_key_of(container_key)
        if item is None:
            self._ensure_lane(container_key, at)
            lane = self.lanes[container_key]
            lane.kind = "container"
            return lane
        # A for_each nested in a body: its lane hangs below the item lane that runs it.
        self._ensure_lane(container_key, at)
        parent_item = self.lanes[item[0]]
        lane = Lane(container_key, step_id_of(container_key), "container", parent=item[0])
        lane.step_keys.append(container_key)
        self.lanes[container_key] = lane
        parent_item.children.append(container_key)
        self._layout_revision += 1
        return lane

    def toggle(self, container_key: str) -> None:
        """Collapse or expand the item lanes of a for_each lane."""
        if container_key in self.collapsed:
            self.collapsed.discard(container_key)
        else:
            self.collapsed.add(container_key)
        self.revision += 1
        self._layout_revision += 1

    def visible_lanes(self) -> list[VisibleLane]:
        """Return the lanes to draw, top to bottom: each for_each followed by its items unless collapsed.

        The list is cached until lanes are added, collapsed or expanded, so callers must not change it.
        """
        revision, cached = self._visible_cache
        if revision == self._layout_revision:
            return cached
        rows: list[VisibleLane] = []

        def visit(key: str, depth: int) -> None:
            lane = self.lanes[key]
            collapsed = key in self.collapsed
            rows.append(VisibleLane(lane, depth, collapsed))
            if not collapsed:
                for child in lane.children:
                    visit(child, depth + 1)

        for root in self.roots:
            visit(root, 0)
        self._visible_cache = (self._layout_revision, rows)
        return rows

    def lane_segments(self, lane: Lane) -> list[Segment]:
        segments: list[Segment] = []
        for key in lane.step_keys:
            segments.extend(self.segments.get(key, ()))
        return segments

    def is_live(self) -> bool:
        return self.run_start is not None and self.run_end is None

    def time_span(self, now: float) -> tuple[float, float]:
        """Return ``(start, end)`` of the run; a live run ends at ``now``."""
        start = self.run_start if self.run_start is not None else (self.last_at or now)
        end = self.run_end if self.run_end is not None else max(now, self.last_at or now)
        return start, max(end, start)


# -- geometry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x <= self.x + self.width and self.y <= y <= self.y + self.height


MIN_BAR_PX = 3.0
"""Minimum bar width in pixels, so instant steps and skip markers stay visible and clickable."""


@dataclass(frozen=True)
class TimelineGeometry:
    """Maps times and lanes to pixels.

    ``origin`` is the time drawn at the left edge of the bar area, which starts ``label_width``
    pixels from the widget's left edge. ``pixels_per_second`` is the zoom, and ``scroll_y`` scrolls
    the lanes.
    """

    origin: float
    pixels_per_second: float
    label_width: float = 170.0
    axis_height: float = 26.0
    lane_height: float = 22.0
    bar_margin: float = 3.0
    scroll_y: float = 0.0

    def x_of(self, at: float) -> float:
        return self.label_width + (at - self.origin) * self.pixels_per_second

    def time_at(self, x: float) -> float:
        return self.origin + (x - self.label_width) / self.pixels_per_second

    def lane_top(self, row: int) -> float:
        return self.axis_height + row * self.lane_height - self.scroll_y

    def row_at(self, y: float) -> int | None:
        if y < self.axis_height:
            return None
        return int((y + self.scroll_y - self.axis_height) // self.lane_height)

    def bar_rect(self, segment: Segment, row: int, now: float) -> Rect:
        """Return the rectangle of ``segment`` in lane ``row``; open segments end at ``now``."""
        end = segment.end if segment.end is not None else max(now, segment.start)
        left = self.x_of(segment.start)
        width = max((end - segment.start) * self.pixels_per_second, MIN_BAR_PX)
        top = self.lane_top(row) + self.bar_margin
        height = self.lane_height - 2 * self.bar_margin
        if segment.kind == "retry_delay":
            # A thin line in the middle of the lane: time passed, but nothing ran.
            top += height / 3
            height /= 3
        return Rect(left, top, width, height)

    def hit(self, rows: list[VisibleLane], model: TimelineModel, x: float, y: float, now: float) -> Segment | None:
        """Return the segment drawn at ``(x, y)``, preferring the latest one where bars overlap."""
        row = self.row_at(y)
        if row is None or row >= len(rows) or x < self.label_width:
            return None
        for segment in reversed(model.lane_segments(rows[row].lane)):
            rect = self.bar_rect(segment, row, now)
            lane_rect = Rect(rect.x, self.lane_top(row), rect.width, self.lane_height)
            if lane_rect.contains(x, y):
                return segment
        return None


_TICK_STEPS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    43200.0,
    86400.0,
)


def tick_step(pixels_per_second: float, min_spacing_px: float = 80.0) -> float:
    """Return the smallest tick interval in seconds whose ticks are at least ``min_spacing_px`` apart."""
    for step in _TICK_STEPS:
        if step * pixels_per_second >= min_spacing_px:
            return step
    return _TICK_STEPS[-1]


def time_ticks(
    run_start: float, first: float, last: float, pixels_per_second: float, min_spacing_px: float = 80.0
) -> list[tuple[float, str]]:
    """Return ``(time, label)`` ticks between ``first`` and ``last``, labelled as offsets from ``run_start``."""
    step = tick_step(pixels_per_second, min_spacing_px)
    index = math.ceil((first - run_start) / step - 1e-9)
    ticks: list[tuple[float, str]] = []
    while True:
        offset = index * step
        at = run_start + offset
        if at > last + 1e-9:
            break
        ticks.append((at, format_offset(offset, step)))
        index += 1
    return ticks


def format_duration(seconds: float) -> str:
    """Format a duration: ``0.42 s``, ``12.3 s`` or ``2 min 05 s``."""
    if seconds < 10.0:
        return f"{seconds:.2f} s"
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_offset(seconds: float, step: float) -> str:
    """Format a tick label: ``0.25 s``, ``12 s``, ``2 min``, ``2 min 30 s``, ``1 h 05 min``."""
    sign = "-" if seconds < -1e-9 else ""
    seconds = abs(seconds)
    if step < 1.0:
        decimals = max(0, math.ceil(-math.log10(step) - 1e-9))
        return f"{sign}{seconds:.{decimals}f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{sign}{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{sign}{minutes} min" if rest == 0 else f"{sign}{minutes} min {rest:02d} s"
    hours, rest = divmod(whole, 3600)
    return f"{sign}{hours} h" if rest == 0 else f"{sign}{hours} h {rest // 60:02d} min"


def run_event_from_row(row: Mapping[str, Any]) -> RunEvent | None:
    """Return the :class:`RunEvent` of a journaled event dict, or None for a type this version does not know."""
    try:
        kind = EventType(str(row["type"]))
    except ValueError:
        return None
    step_key = row.get("step_key")
    data = row.get("data")
    return RunEvent(
        run_id=str(row["run_id"]),
        seq=int(row["seq"]),
        type=kind,
        step_key=step_key,
        step_id=step_id_of(step_key) if step_key else None,
        data=dict(data) if isinstance(data, Mapping) else {},
        at=float(row["at"]),
    )
