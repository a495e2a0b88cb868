"""Align, distribute, snap and auto-layout arithmetic of the canvas (no QApplication needed)."""

from __future__ import annotations

import pytest

from studio.canvas.arrange import ALIGN_MODES, align, auto_layout, distribute, snap_position

BOXES = {
    "a": (0.0, 0.0, 100.0, 50.0),
    "b": (300.0, 80.0, 200.0, 60.0),
    "c": (120.0, 400.0, 100.0, 40.0),
}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("left", {"a": (0.0, 0.0), "b": (0.0, 80.0), "c": (0.0, 400.0)}),
        ("right", {"a": (400.0, 0.0), "b": (300.0, 80.0), "c": (400.0, 400.0)}),
        ("top", {"a": (0.0, 0.0), "b": (300.0, 0.0), "c": (120.0, 0.0)}),
        ("bottom", {"a": (0.0, 390.0), "b": (300.0, 380.0), "c": (120.0, 400.0)}),
        ("center_horizontal", {"a": (200.0, 0.0), "b": (150.0, 80.0), "c": (200.0, 400.0)}),
        ("center_vertical", {"a": (0.0, 195.0), "b": (300.0, 190.0), "c": (120.0, 200.0)}),
    ],
)
def test_align_modes(mode: str, expected: dict[str, tuple[float, float]]) -> None:
    assert align(BOXES, mode) == expected


def test_align_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="diagonal"):
        align(BOXES, "diagonal")
    assert "left" in ALIGN_MODES


def test_distribute_leaves_equal_gaps() -> None:
    result = distribute(BOXES, "horizontal")
    assert result["a"] == (0.0, 0.0)
    assert result["b"] == (300.0, 80.0)
    lefts = sorted((x, key) for key, (x, _y) in result.items())
    assert [key for _x, key in lefts] == ["a", "c", "b"]
    gap_one = result["c"][0] - (result["a"][0] + 100.0)
    gap_two = result["b"][0] - (result["c"][0] + 100.0)
    assert gap_one == pytest.approx(gap_two)


def test_distribute_vertical_keeps_outer_boxes() -> None:
    result = distribute(BOXES, "vertical")
    assert result["a"] == (0.0, 0.0)
    assert result["c"] == (120.0, 400.0)
    assert result["b"][1] == pytest.approx((400.0 - 50.0 - 60.0) / 2.0 + 50.0)


def test_distribute_two_boxes_do_not_move() -> None:
    two = {"a": BOXES["a"], "b": BOXES["b"]}
    assert distribute(two, "vertical") == {"a": (0.0, 0.0), "b": (300.0, 80.0)}


def test_snap_rounds_to_grid() -> None:
    assert snap_position((29.0, -31.0)) == (20.0, -40.0)
    assert snap_position((10.0, 10.0), grid=25.0) == (0.0, 0.0)


def test_auto_layout_keeps_pinned_and_orders_layers() -> None:
    boxes = {key: (500.0 + index * 10.0, 300.0, 100.0, 50.0) for index, key in enumerate("abcd")}
    edges = [("a", "b"), ("b", "c"), ("a", "d")]
    result = auto_layout(boxes, edges, pinned={"d"})
    assert "d" not in result
    assert result["a"][0] < result["b"][0] < result["c"][0]
    assert min(x for x, _y in result.values()) == pytest.approx(500.0)
    assert min(y for _x, y in result.values()) == pytest.approx(300.0)


def test_auto_layout_all_pinned_moves_nothing() -> None:
    assert auto_layout(BOXES, [("a", "b")], pinned=set(BOXES)) == {}
