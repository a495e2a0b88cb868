"""Command Center with an MCP elicitation task: Accept, Decline and Cancel request, through a real engine and server."""

from __future__ import annotations

from typing import Any

import pytest
import qasync

from studio.engine import EventType
from studio.store import Store
from tests.conftest import build_workflow
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY, MISSING_DEPS_HINT
from tests.ui.test_command_center import SignalWaiter, make_panel, running_engine

pytestmark = pytest.mark.slow


def elicitation_workflow() -> Any:
    server = f"stdio:node {EVERYTHING_ENTRY} stdio"
    step = {"id": "form", "type": "mcp_call", "config": {"server_url": server, "tool": "trigger-elicitation-request"}}
    return build_workflow([step], name="Ask a person")


@pytest.mark.parametrize(
    ("button", "decision", "reply"),
    [
        ("approve_button", "accept", "Grace"),
        ("reject_button", "decline", "declined"),
        ("cancel_button", "cancel", "cancel"),
    ],
)
def test_elicitation_buttons(
    qtbot: Any, store: Store, qasync_loop: qasync.QEventLoop, button: str, decision: str, reply: str
) -> None:
    if not EVERYTHING_ENTRY.exists():
        pytest.fail(f"{EVERYTHING_ENTRY} is missing; {MISSING_DEPS_HINT}")
    panel = make_panel(qtbot)

    async def scenario() -> Any:
        async with running_engine(store) as engine:
            panel.set_engine(engine)
            run_id = await engine.run_workflow(elicitation_workflow())
            async for event in engine.events(run_id):
                if event.type == EventType.STEP_WAITING:
                    break
            [task] = store.list_tasks(run_id=run_id)
            panel.refresh()
            assert panel.open_task(task.id)
            view = panel.task_view
            labels = (view.approve_button.text(), view.reject_button.text(), view.cancel_button.isVisible())
            form = view.form
            assert form is not None
            if decision == "accept":
                # The name is required, so Accept without it only marks the field.
                view.approve_button.click()
                assert form.error_text("name") == "required: fill it in to approve"
                form.editors["name"].setText("Grace")  # type: ignore[union-attr]
            resolved = SignalWaiter(panel.sig_task_resolved)
            getattr(view, button).click()
            assert (await resolved.wait()) == (task.id, decision)
            summary = await engine.wait(run_id)
            panel.close_panel()
            return labels, summary, view.comment_box.isVisible(), view.meta_label.text()

    labels, summary, comment_shown, meta = qasync_loop.run_until_complete(scenario())

    assert labels == ("Accept", "Decline", True)
    assert comment_shown is False
    assert "MCP\u00a0input\u00a0request" in meta
    assert summary.status == "completed", summary.error
    assert reply.lower() in str(summary.result).lower()
