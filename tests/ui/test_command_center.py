"""Command Center tests: the inbox, the generated form and decisions, races, timeouts, through a real engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QPlainTextEdit, QSystemTrayIcon

from studio.app.main_window import MainWindow
from studio.engine import Engine
from studio.model.workflow import FormField, Workflow
from studio.panels.command_center import model
from studio.panels.command_center.notifier import TaskNotifier
from studio.panels.command_center.panel import CommandCenterPanel, badge_text
from studio.store import Store, open_store
from tests.conftest import build_workflow, for_each_step, lua_step

SIGNAL_TIMEOUT_S = 20.0

EVERY_FIELD = [
    {"name": "heading", "label": "Heading", "type": "text", "required": True, "help": "Shown on top"},
    {"name": "notes", "type": "multiline", "default": "line one"},
    {"name": "copies", "type": "number", "default": 2},
    {"name": "ratio", "type": "number"},
    {"name": "urgent", "type": "boolean", "default": False},
    {"name": "tone", "type": "choice", "choices": ["formal", "casual"], "default": "formal"},
    {"name": "extra", "type": "json", "default": {"keep": True}},
]


def review_workflow(fields: list[dict[str, Any]] | None = None, **task_config: Any) -> Workflow:
    """prep (Lua) -> review (a human task) -> use (Lua that returns the form values and the type of copies)."""
    config = {
        "title": "Review {{steps.prep.result.name}}",
        "instructions": "Check the profile of {{steps.prep.result.name}}.\nThen fill in the form.",
        "fields": EVERY_FIELD if fields is None else fields,
        "assignee_role": "editor",
        **task_config,
    }
    return build_workflow(
        [
            lua_step("prep", "return {name = 'Ada', score = 7}"),
            {"id": "review", "type": "human_task", "config": config},
            lua_step(
                "use",
                "return {values = values, copies_type = math.type(values.copies)}",
                {"values": "{{steps.review.result.values}}"},
            ),
        ],
        [("prep", "review")],
        name="Profile review",
    )


class SignalWaiter:
    """Connects to ``signal`` at once and records the first emission whose arguments satisfy ``condition``.

    Connecting before the action that emits matters: a decision made without yielding to the loop
    emits its signals before a waiting coroutine would have started.
    """

    def __init__(self, signal: SignalInstance, condition: Callable[..., bool] | None = None) -> None:
        self._signal = signal
        self._condition = condition
        self._future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        signal.connect(self._on_emit)

    def _on_emit(self, *args: Any) -> None:
        if not self._future.done() and (self._condition is None or self._condition(*args)):
            self._future.set_result(args)

    async def wait(self, timeout_s: float = SIGNAL_TIMEOUT_S) -> tuple[Any, ...]:
        """Return the arguments of the matching emission, waiting up to ``timeout_s`` seconds for it."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout_s)
        finally:
            self._signal.disconnect(self._on_emit)


@asynccontextmanager
async def running_engine(store: Store) -> AsyncIterator[Engine]:
    engine = Engine(store)
    try:
        yield engine
    finally:
        await engine.aclose()


async def start_waiting(engine: Engine, workflow: Workflow) -> tuple[str, str]:
    """Run ``workflow`` until it waits for its human task; return (run id, task id)."""
    run_id = await engine.run_workflow(workflow)
    summary = await engine.wait(run_id)
    assert summary.status == "waiting", summary.error
    tasks = engine.store.list_tasks(run_id=run_id)
    assert len(tasks) == 1
    return run_id, tasks[0].id


def make_panel(qtbot: Any, **options: Any) -> CommandCenterPanel:
    panel = CommandCenterPanel(**options)
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    return panel


def cell(panel: CommandCenterPanel, row: int, column: str) -> str:
    return str(panel.proxy.index(row, model.COLUMNS.index(column)).data())


# -- the inbox ----------------------------------------------------------------------------------


def test_inbox_shows_waiting_task(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)
    counts: list[int] = []
    panel.sig_pending_count_changed.connect(counts.append)

    async def scenario() -> str:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            arrived = SignalWaiter(panel.sig_task_arrived)
            run_id, task_id = await start_waiting(engine, review_workflow(timeout_s=600))
            assert (await arrived.wait())[0] == task_id
            panel.close_panel()
            return run_id

    run_id = qasync_loop.run_until_complete(scenario())

    assert panel.proxy.rowCount() == 1
    assert cell(panel, 0, "Title") == "Review Ada"
    assert cell(panel, 0, "Workflow") == "Profile review"
    assert cell(panel, 0, "Run") == run_id[:8]
    assert cell(panel, 0, "Step") == "review"
    assert cell(panel, 0, "Age") in ("0 s", "1 s", "2 s")
    assert cell(panel, 0, "Time left") in ("9:59 min", "9:58 min", "10:00 min")
    assert cell(panel, 0, "Assignee") == "editor"
    assert counts == [1]


def test_inbox_filter_and_sort(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)

    async def scenario() -> None:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            await start_waiting(engine, review_workflow(timeout_s=900, title="Slow review"))
            await start_waiting(engine, review_workflow(timeout_s=300, title="Fast review"))
            await start_waiting(engine, review_workflow(title="Open-ended review"))
            panel.refresh()
            panel.close_panel()

    qasync_loop.run_until_complete(scenario())

    titles = [cell(panel, row, "Title") for row in range(panel.proxy.rowCount())]
    assert titles == ["Fast review", "Slow review", "Open-ended review"]
    panel.filter_edit.setText("slow")
    assert [cell(panel, row, "Title") for row in range(panel.proxy.rowCount())] == ["Slow review"]
    panel.filter_edit.setText("review editor")
    assert panel.proxy.rowCount() == 3
    panel.filter_edit.setText("nothing like this")
    assert panel.proxy.rowCount() == 0


def test_fan_out_tasks_show_their_item(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)
    body = [
        lua_step("shout", "return string.upper(word)", {"word": "{{item}}"}),
        {"id": "check", "type": "human_task", "config": {"title": "Check {{item}}"}},
    ]
    workflow = build_workflow(
        [for_each_step("words", ["alpha", "beta"], body, edges=[{"source": "shout", "target": "check"}])]
    )

    async def scenario() -> None:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            run_id = await engine.run_workflow(workflow)
            assert (await engine.wait(run_id)).status == "waiting"
            panel.refresh()
            task = next(t for t in store.list_tasks(run_id=run_id) if t.step_key == "words[1].check")
            assert panel.open_task(task.id)
            panel.close_panel()

    qasync_loop.run_until_complete(scenario())

    assert sorted(cell(panel, row, "Step") for row in range(2)) == ["words[0].check", "words[1].check"]
    view = panel.task_view
    assert view.title_label.text() == "Check beta"
    top = {view.data_tree.topLevelItem(i).text(0): view.data_tree.topLevelItem(i) for i in range(2)}
    assert top["item"].text(1) == "beta"
    upstream = top["upstream results"]
    assert (upstream.child(0).text(0), upstream.child(0).text(1)) == ("shout", "BETA")


# -- the form and decisions -------------------------------------------------------------------


def test_form_builds_editor_per_type(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)

    async def scenario() -> None:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            _, task_id = await start_waiting(engine, review_workflow())
            assert panel.open_task(task_id)
            panel.close_panel()

    qasync_loop.run_until_complete(scenario())

    form = panel.task_view.form
    assert form is not None
    expected = {
        "heading": QLineEdit,
        "notes": QPlainTextEdit,
        "copies": QLineEdit,
        "ratio": QLineEdit,
        "urgent": QCheckBox,
        "tone": QComboBox,
        "extra": QPlainTextEdit,
    }
    assert {name: type(editor) for name, editor in form.editors.items()} == expected
    assert form.raw_value("notes") == "line one"
    assert form.raw_value("copies") == "2"
    assert form.raw_value("tone") == "formal"
    assert form.raw_value("urgent") is False
    assert '"keep": true' in str(form.raw_value("extra"))
    assert panel.task_view.instructions_label.text() == "Check the profile of Ada.\nThen fill in the form."
    labels = [panel.task_view.form.layout().itemAt(i).widget() for i in range(0, 14, 2)]  # type: ignore[union-attr]
    assert labels[0].text() == "Heading *"


def test_approve_resumes_run_with_values(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)
    counts: list[int] = []
    panel.sig_pending_count_changed.connect(counts.append)

    async def scenario() -> Any:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            run_id, task_id = await start_waiting(engine, review_workflow())
            panel.refresh()
            assert panel.open_task(task_id)
            form = panel.task_view.form
            assert form is not None

            # A missing required field and broken JSON are shown inline and nothing is sent.
            extra = form.editors["extra"]
            assert isinstance(extra, QPlainTextEdit)
            extra.setPlainText('{"k": [1, }')
            assert form.error_text("extra").startswith("invalid JSON at line 1, column 11")
            panel.task_view.approve_button.click()
            assert form.error_text("heading") == "required: fill it in to approve"
            assert store.get_task(task_id).status == "pending"

            form.editors["heading"].setText("Final")  # type: ignore[union-attr]
            form.editors["notes"].setPlainText("first\nsecond")  # type: ignore[union-attr]
            form.editors["copies"].setText("3")  # type: ignore[union-attr]
            form.editors["ratio"].setText("0.25")  # type: ignore[union-attr]
            form.editors["urgent"].setChecked(True)  # type: ignore[union-attr]
            tone = form.editors["tone"]
            assert isinstance(tone, QComboBox)
            tone.setCurrentIndex(tone.findData("casual"))
            extra.setPlainText('{"k": [1, 2]}')
            assert form.error_text("extra") == ""
            panel.task_view.comment_edit.setPlainText("looks good")
            resolved = SignalWaiter(panel.sig_task_resolved)
            panel.task_view.approve_button.click()
            assert (await resolved.wait()) == (task_id, "approve")
            summary = await engine.wait(run_id)
            panel.close_panel()
            return summary

    summary = qasync_loop.run_until_complete(scenario())

    assert summary.status == "completed", summary.error
    values = summary.result["use"]["values"]
    assert values == {
        "heading": "Final",
        "notes": "first\nsecond",
        "copies": 3,
        "ratio": 0.25,
        "urgent": True,
        "tone": "casual",
        "extra": {"k": [1, 2]},
        "comment": "looks good",
    }
    assert summary.result["use"]["copies_type"] == "integer"
    assert panel.proxy.rowCount() == 0
    assert counts == [1, 0]
    assert "Approved by" in panel.task_view.banner_text()
    assert not panel.task_view.approve_button.isEnabled()


def test_reject_fails_step(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)
    panel.actor = "reviewer-1"

    async def scenario() -> Any:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            run_id, task_id = await start_waiting(engine, review_workflow())
            assert panel.open_task(task_id)
            panel.task_view.comment_edit.setPlainText("wrong person")
            resolved = SignalWaiter(panel.sig_task_resolved)
            # Reject needs no required fields.
            panel.task_view.reject_button.click()
            assert (await resolved.wait()) == (task_id, "reject")
            summary = await engine.wait(run_id)
            panel.close_panel()
            return summary

    summary = qasync_loop.run_until_complete(scenario())

    assert summary.status == "failed"
    assert summary.error["kind"] == "rejected"
    assert "rejected by reviewer-1: wrong person" in summary.error["message"]
    assert store.step_runs(summary.run_id)["use"].status == "skipped"


def test_two_panels_one_wins(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    first = make_panel(qtbot)
    second = make_panel(qtbot)
    first.actor, second.actor = "alice", "bob"

    async def scenario() -> Any:
        async with running_engine(store) as engine:
            first.set_engine(engine)
            second.set_engine(engine)
            run_id, task_id = await start_waiting(engine, review_workflow(fields=[]))
            assert first.open_task(task_id)
            assert second.open_task(task_id)
            won = SignalWaiter(first.sig_task_resolved)
            lost = SignalWaiter(second.sig_resolve_failed)
            first.task_view.approve_button.click()
            second.task_view.reject_button.click()
            await won.wait()
            message = (await lost.wait())[1]
            summary = await engine.wait(run_id)
            first.close_panel()
            second.close_panel()
            return summary, message

    summary, message = qasync_loop.run_until_complete(scenario())

    assert summary.status == "completed", summary.error
    decisions = [event["data"] for event in store.events(summary.run_id) if event["type"] == "task_resolved"]
    assert [(data["decision"], data["actor"]) for data in decisions] == [("approve", "alice")]
    assert message == "This task was already resolved by alice (approve)."
    assert second.task_view.banner_text() == message
    assert not second.task_view.approve_button.isEnabled()
    assert second.proxy.rowCount() == 0
    assert first.proxy.rowCount() == 0


def test_resolution_by_other_engine_after_refresh(
    qtbot: Any, store: Store, tmp_path: Path, qasync_loop: qasync.QEventLoop
) -> None:
    """The panel's engine runs nothing; another engine on the same file creates and resolves the task."""
    panel = make_panel(qtbot, refresh_interval_ms=100)
    notified: list[tuple[str, bool]] = []
    panel.notifier.sig_notified.connect(lambda message, shown: notified.append((message, shown)))

    async def scenario() -> None:
        other_store = open_store(tmp_path / "studio.db")
        try:
            async with running_engine(store) as engine, running_engine(other_store) as other:
                panel.set_engine(engine)
                assert panel.pending_count() == 0
                arrived = SignalWaiter(panel.sig_task_arrived)
                notification = SignalWaiter(panel.notifier.sig_notified)
                run_id, task_id = await start_waiting(other, review_workflow(fields=[]))
                assert (await arrived.wait())[0] == task_id
                await notification.wait()
                assert panel.open_task(task_id)

                removed = SignalWaiter(panel.sig_task_removed)
                await other.resolve_task(task_id, "approve", {}, actor="cli user")
                assert (await removed.wait())[0] == task_id
                assert (await other.wait(run_id)).status == "completed"
                panel.close_panel()
        finally:
            other_store.close()

    qasync_loop.run_until_complete(scenario())

    assert panel.pending_count() == 0
    assert panel.task_view.banner_text() == "This task was already resolved by cli user (approve)."
    # Offscreen there is no system tray: the notification is reported as not shown, and nothing breaks.
    assert not QSystemTrayIcon.isSystemTrayAvailable()
    assert notified == [("Review Ada (Profile review)", False)]
    assert panel.notifier.tray_icon is None


def test_timeout_removes_row(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)
    counts: list[int] = []
    panel.sig_pending_count_changed.connect(counts.append)

    async def scenario() -> Any:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            arrived = SignalWaiter(panel.sig_task_arrived)
            removed = SignalWaiter(panel.sig_task_removed)
            run_id = await engine.run_workflow(review_workflow(fields=[], timeout_s=0.3))
            await arrived.wait()
            assert panel.open_task(panel.model.task_ids()[0])
            assert "Time left:" in panel.task_view.meta_label.text().replace("\xa0", " ")
            await removed.wait()
            summary = await engine.wait(run_id)
            panel.close_panel()
            return summary

    summary = qasync_loop.run_until_complete(scenario())

    assert panel.proxy.rowCount() == 0
    assert counts == [1, 0]
    assert panel.task_view.banner_text().startswith("This task timed out")
    assert "the step failed" in panel.task_view.banner_text()
    assert "Time left" not in panel.task_view.meta_label.text().replace("\xa0", " ")
    assert summary.status == "failed"
    assert summary.error["kind"] == "timeout"


def test_stop_of_run_removes_its_task(qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop) -> None:
    panel = make_panel(qtbot)

    async def scenario() -> None:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            run_id, task_id = await start_waiting(engine, review_workflow(fields=[]))
            assert panel.open_task(task_id)
            removed = SignalWaiter(panel.sig_task_removed)
            await engine.stop(run_id)
            assert (await removed.wait())[0] == task_id
            panel.close_panel()

    qasync_loop.run_until_complete(scenario())

    assert panel.pending_count() == 0
    assert panel.task_view.banner_text() == "This task was cancelled because its run ended."


def test_window_badge_follows_count(qtbot: Any, tmp_path: Path, qasync_loop: qasync.QEventLoop) -> None:
    window = MainWindow(store_path=tmp_path / "window.db")
    qtbot.addWidget(window)
    window.show()
    window.set_workflow(review_workflow(fields=[]))
    texts: list[str] = []

    async def scenario() -> str:
        panel = window.command_center
        first = SignalWaiter(panel.sig_pending_count_changed)
        notified = SignalWaiter(panel.notifier.sig_notified)
        run_id = await window.start_run()
        assert run_id is not None
        assert (await first.wait()) == (1,)
        assert (await notified.wait()) == ("Review Ada (Profile review)", False)
        status_message = window.statusBar().currentMessage()
        texts.append(window.action_command_center.text())
        window.action_command_center.trigger()
        assert window.command_center.isVisible()
        task_id = panel.model.task_ids()[0]
        emptied = SignalWaiter(panel.sig_pending_count_changed)
        assert await panel.resolve(task_id, "approve", {})
        assert (await emptied.wait()) == (0,)
        texts.append(window.action_command_center.text())
        await window.aclose()
        return status_message

    status_message = qasync_loop.run_until_complete(scenario())

    assert texts == ["Command Center (1)", "Command Center"]
    # Offscreen there is no tray, so the new-task message went to the status bar.
    assert status_message == "New human task: Review Ada (Profile review)"


def test_badge_text_follows_count() -> None:
    assert badge_text(0) == "Command Center"
    assert badge_text(3) == "Command Center (3)"


def test_notifier_without_tray(qtbot: Any) -> None:
    notifier = TaskNotifier()
    assert notifier.notify("New task", "Review Ada") is False
    assert notifier.tray_icon is None
    assert notifier.messages_shown == 0


# -- Qt-free logic --------------------------------------------------------------------------------


def test_model_imports_no_qt() -> None:
    code = "import sys, studio.panels.command_center.model; print(sorted(m for m in sys.modules if 'PySide6' in m))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3599, "59 min"), (3600 + 5 * 60, "1 h 05 min"), (90000, "1 d 1 h")],
)
def test_format_age(seconds: float, expected: str) -> None:
    assert model.format_age(seconds) == expected


@pytest.mark.parametrize(
    ("left", "expected"),
    [(None, "no timeout"), (-1, "timing out"), (0.2, "1 s"), (45, "45 s"), (245, "4:05 min"), (7800, "2 h 10 min")],
)
def test_format_time_left(left: float | None, expected: str) -> None:
    now = time.time()
    assert model.format_time_left(None if left is None else now + left, now) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("3", 3), ("3.0", 3), (" -2 ", -2), ("0.25", 0.25), ("1e3", 1000.0), ("1_000", 1000)]
)
def test_parse_number(text: str, expected: float) -> None:
    value = model.parse_number(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", ["three", "nan", "inf", "1.2.3"])
def test_parse_number_rejects_text(text: str) -> None:
    with pytest.raises(model.FieldValueError, match="number"):
        model.parse_number(text)


def test_collect_values_checks_types_and_required() -> None:
    fields = [FormField.model_validate(field) for field in EVERY_FIELD]
    raw = {"heading": "", "notes": "", "copies": "x", "ratio": "", "urgent": False, "tone": "loud", "extra": "[1,"}
    values, errors = model.collect_values(fields, raw, "approve")
    assert values == {"urgent": False}
    assert errors["heading"] == "required: fill it in to approve"
    assert "'x' is not a number" in errors["copies"]
    assert errors["tone"] == "'loud' is not one of the choices: formal, casual"
    assert errors["extra"].startswith("invalid JSON at line 1")
    assert set(errors) == {"heading", "copies", "tone", "extra"}
    _, reject_errors = model.collect_values(fields, {**raw, "copies": "", "tone": "", "extra": ""}, "reject")
    assert reject_errors == {}


def test_initial_text_of_defaults() -> None:
    def initial(**field: Any) -> str:
        return model.initial_text(FormField.model_validate({"name": "f", **field}))

    assert initial(type="number", default=2.0) == "2"
    assert initial(type="number", default=2.5) == "2.5"
    assert initial(type="json", default={"a": 1}) == '{\n  "a": 1\n}'
    assert initial(type="text", default="hi") == "hi"
    assert initial(type="text") == ""
