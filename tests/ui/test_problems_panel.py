"""Tests of live validation: debounced findings in the Problems dock, canvas marks and navigation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from editor_host import EditorHost, build_workflow, llm
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from studio.app.live_validation import DEBOUNCE_MS, LiveValidation, frozen_copy, install_live_validation
from studio.model.validation import validate_workflow
from studio.panels.inspector import install_inspector

WAIT_MS = DEBOUNCE_MS + 2000
"""Maximum wait for one debounced validation, in milliseconds. Validating these small workflows takes a few."""


def chain() -> EditorHost:
    """Workflow a -> b -> c, joined by edges."""
    return EditorHost(build_workflow([llm("a"), llm("b"), llm("c")], [("a", "b"), ("b", "c")]))


@pytest.fixture(params=[True, False], ids=["worker-thread", "gui-thread"])
def host(request: pytest.FixtureRequest, qtbot: QtBot) -> Iterator[EditorHost]:
    window = chain()
    qtbot.addWidget(window)
    install = install_live_validation(window)
    install.live._threaded = request.param
    yield window
    install.live.close()


def live(window: EditorHost) -> LiveValidation:
    return window.live_validation  # type: ignore[attr-defined, no-any-return]


def codes(window: EditorHost) -> list[tuple[str, str | None]]:
    panel = window.problems_panel  # type: ignore[attr-defined]
    return [(finding.code, finding.step_id) for finding in panel.model.findings()]


def settle(window: EditorHost, qtbot: QtBot) -> None:
    """Wait for the validation that install or the last edit scheduled."""
    if not live(window).is_idle():
        with qtbot.waitSignal(live(window).sig_findings_changed, timeout=WAIT_MS):
            pass


def test_cycle_shows_problem_and_mark(host: EditorHost, qtbot: QtBot) -> None:
    settle(host, qtbot)
    assert codes(host) == []
    with qtbot.waitSignal(live(host).sig_findings_changed, timeout=WAIT_MS):
        host.document.set_step_field("a", "config.prompt", "Use {{steps.c.result}}")
    assert ("cycle", "a") in codes(host) or ("cycle", "b") in codes(host) or ("cycle", "c") in codes(host)
    cycle = next(finding for finding in live(host).findings if finding.code == "cycle")
    node = host.scene.node_item(cycle.step_id or "")
    assert node is not None
    assert node.problems == ("error", 1)
    assert cycle.message in node.toolTip()
    summary = host.problems_panel.summary_label.text()  # type: ignore[attr-defined]
    assert summary == "1 error(s), 0 warning(s)"


def test_fix_clears_problem_and_mark(host: EditorHost, qtbot: QtBot) -> None:
    settle(host, qtbot)
    with qtbot.waitSignal(live(host).sig_findings_changed, timeout=WAIT_MS):
        host.document.set_step_field("b", "config.prompt", "{{steps.nope.result}}")
    assert ("unknown-step-ref", "b") in codes(host)
    node = host.scene.node_item("b")
    assert node is not None
    assert node.problems == ("error", 1)
    with qtbot.waitSignal(live(host).sig_findings_changed, timeout=WAIT_MS):
        host.document.undo_stack.undo()
    assert codes(host) == []
    assert node.problems == (None, 0)
    assert host.problems_panel.summary_label.text() == "No problems"  # type: ignore[attr-defined]


def test_rapid_edits_validate_once(host: EditorHost, qtbot: QtBot) -> None:
    settle(host, qtbot)
    before = live(host).validation_count
    with qtbot.waitSignal(live(host).sig_findings_changed, timeout=WAIT_MS):
        for number in range(5):
            host.document.set_step_field("c", "name", f"title {number}")
    assert live(host).validation_count == before + 1
    assert live(host).last_duration_ms > 0


def test_findings_match_full_validation(host: EditorHost, qtbot: QtBot) -> None:
    settle(host, qtbot)
    with qtbot.waitSignal(live(host).sig_findings_changed, timeout=WAIT_MS):
        host.document.set_step_field("a", "config.prompt", "{{steps.c.result}} {{input.nope}}")
    assert live(host).findings == validate_workflow(host.document.workflow)
    assert sorted(code for code, _ in codes(host)) == ["cycle", "unknown-input"]


def test_click_selects_step_and_focuses_field(qtbot: QtBot) -> None:
    window = chain()
    qtbot.addWidget(window)
    inspector = install_inspector(window)
    install = install_live_validation(window)
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    with qtbot.waitSignal(install.live.sig_findings_changed, timeout=WAIT_MS):
        window.document.set_step_field("b", "config.prompt", "{{steps.nope.result}}")
    row = [finding.code for finding in install.panel.model.findings()].index("unknown-step-ref")
    install.panel.activate_row(row)
    assert window.view.selected_step_ids() == ["b"]
    assert inspector.panel.step_id == "b"
    assert QApplication.focusWidget() is inspector.panel.editor("config.prompt").input  # type: ignore[union-attr]
    install.live.close()
    inspector.panel.show_step(None)


def test_inspector_edit_reaches_problems(qtbot: QtBot) -> None:
    window = chain()
    qtbot.addWidget(window)
    inspector = install_inspector(window)
    install = install_live_validation(window)
    settle(window, qtbot)
    inspector.panel.show_step("a")
    editor = inspector.panel.editor("config.prompt")
    with qtbot.waitSignal(install.live.sig_findings_changed, timeout=WAIT_MS):
        editor.input.setPlainText("")  # type: ignore[union-attr]
        editor.commit()  # type: ignore[union-attr]
    assert ("missing-config", "a") in codes(window)
    install.live.close()
    inspector.panel.show_step(None)


def test_frozen_copy_is_independent_of_edits() -> None:
    window = chain()
    copy = frozen_copy(window.document.workflow)
    window.document.remove_steps(["c"])
    assert [step.id for step in copy.steps] == ["a", "b", "c"]
    assert len(copy.edges) == 2
    window.close()
