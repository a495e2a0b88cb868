"""Human tasks: waiting, approve and reject, races between resolvers, timeouts and resolution while detached."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from studio.engine import Engine, EngineError, EventType
from studio.engine.events import RUN_TERMINAL_EVENTS
from studio.model.workflow import Workflow
from studio.store import Store
from tests.conftest import EngineFactory, EventLog, build_workflow, lua_step

pytestmark = pytest.mark.asyncio(loop_scope="module")


def review_workflow(**task_config: Any) -> Workflow:
    """prep -> review (a human task with a required heading and a number) -> use (reads the form values)."""
    fields = [
        {"name": "heading", "type": "text", "required": True},
        {"name": "copies", "type": "number", "default": 2},
    ]
    return build_workflow(
        [
            lua_step("prep", "return 'draft'"),
            {
                "id": "review",
                "type": "human_task",
                "config": {"title": "Check {{steps.prep.result}}", "fields": fields, **task_config},
            },
            lua_step(
                "use",
                "return heading .. ' x' .. copies",
                {
                    "heading": "{{steps.review.result.values.heading}}",
                    "copies": "{{steps.review.result.values.copies}}",
                },
            ),
        ],
        [("prep", "review")],
    )


async def start_waiting(studio: Engine, store: Store, workflow: Workflow) -> tuple[str, str]:
    """Start a run and return (run id, task id) once it waits for its human task."""
    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)
    assert summary.status == "waiting", summary.error
    tasks = store.list_tasks(run_id=run_id)
    assert len(tasks) == 1
    return run_id, tasks[0].id


async def test_waits_then_approve_passes_values(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    run_id, task_id = await start_waiting(studio, store, review_workflow())

    assert store.get_run(run_id).status == "waiting"
    task = store.get_task(task_id)
    assert task.title == "Check draft"
    assert store.step_runs(run_id)["review"].status == "waiting"
    assert "use" not in store.step_runs(run_id)

    record = await studio.resolve_task(task_id, "approve", {"heading": "Final", "copies": "3"}, actor="tester")
    assert record.id == run_id
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"use": "Final x3"}
    resolved = log.of_type(EventType.TASK_RESOLVED, run_id)
    assert [event.data["actor"] for event in resolved] == ["tester"]
    assert store.get_task(task_id).status == "approved"


async def test_reject_fails_step(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    run_id, task_id = await start_waiting(studio, store, review_workflow())

    await studio.resolve_task(task_id, "reject", {"comment": "wrong numbers"}, actor="boss")
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    assert summary.error["kind"] == "rejected"
    message = str(summary.error["message"])
    assert "rejected by boss" in message
    assert "wrong numbers" in message
    assert store.step_runs(run_id)["use"].status == "skipped"


async def test_concurrent_resolve_one_wins(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    run_id, task_id = await start_waiting(studio, store, review_workflow())

    outcomes = await asyncio.gather(
        studio.resolve_task(task_id, "approve", {"heading": "A"}, actor="first"),
        studio.resolve_task(task_id, "reject", {}, actor="second"),
        return_exceptions=True,
    )

    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], EngineError)
    assert "already resolved" in str(errors[0]) or "a moment earlier" in str(errors[0])
    summary = await studio.wait(run_id)
    assert summary.status == "completed", summary.error
    assert store.get_task(task_id).resolved_by == "first"


async def test_resolve_twice_from_two_engines(make_engine: EngineFactory, store: Store) -> None:
    owner, _ = await make_engine()
    other, _ = await make_engine()
    run_id, task_id = await start_waiting(owner, store, review_workflow())

    await owner.resolve_task(task_id, "approve", {"heading": "Owner"}, actor="owner")
    with pytest.raises(EngineError, match="already resolved"):
        await other.resolve_task(task_id, "reject", {}, actor="late")

    assert (await owner.wait(run_id)).status == "completed"


async def test_missing_required_field_named(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    run_id, task_id = await start_waiting(studio, store, review_workflow())

    with pytest.raises(EngineError, match="field 'heading' is required"):
        await studio.resolve_task(task_id, "approve", {})
    with pytest.raises(EngineError, match="field 'copies' needs a number, got 'many'"):
        await studio.resolve_task(task_id, "approve", {"heading": "x", "copies": "many"})
    with pytest.raises(EngineError, match="no field 'colour'"):
        await studio.resolve_task(task_id, "approve", {"heading": "x", "colour": "red"})

    assert store.get_task(task_id).status == "pending"
    await studio.resolve_task(task_id, "reject", {})
    assert (await studio.wait(run_id)).status == "failed"


async def test_resolved_while_detached_resumes(make_engine: EngineFactory, store: Store) -> None:
    first, _ = await make_engine()
    run_id, task_id = await start_waiting(first, store, review_workflow())
    await first.aclose()
    assert store.get_run(run_id).owner is None

    assert store.resolve_task(
        task_id, status="approved", decision="approve", values={"heading": "Later", "copies": 5}, actor="elsewhere"
    )
    second, log = await make_engine()
    resumed = await second.resume_interrupted()

    assert resumed == [run_id]
    summary = await second.wait(run_id)
    assert summary.status == "completed", summary.error
    assert summary.result == {"use": "Later x5"}
    assert log.of_type(EventType.RUN_RESUMED, run_id)


async def test_pending_task_without_owner_not_resumed_early(make_engine: EngineFactory, store: Store) -> None:
    first, _ = await make_engine()
    run_id, _ = await start_waiting(first, store, review_workflow())
    await first.aclose()

    second, _ = await make_engine()
    assert await second.resume_interrupted() == []
    assert store.get_run(run_id).status == "waiting"


@pytest.mark.parametrize(
    ("policy", "status", "expected"),
    [
        ("fail", "failed", "nobody resolved human task"),
        ("default", "completed", {"use": "Default heading x2"}),
        ("reject", "failed", "was rejected by timeout"),
    ],
)
async def test_timeout_policies(
    engine: tuple[Engine, EventLog], store: Store, policy: str, status: str, expected: Any
) -> None:
    studio, log = engine
    workflow = review_workflow(timeout_s=0.3, on_timeout=policy)
    workflow.steps[1].config.fields[0].default = "Default heading"  # type: ignore[union-attr]

    run_id = await studio.run_workflow(workflow)
    # wait() returns as soon as the run waits for the task, so await the run's end event instead.
    await log.wait_for(lambda event: event.run_id == run_id and event.type in RUN_TERMINAL_EVENTS)
    summary = await studio.wait(run_id)

    assert summary.status == status
    if status == "completed":
        assert summary.result == expected
    else:
        assert isinstance(summary.error, dict)
        assert expected in str(summary.error["message"])
    task = store.list_tasks(statuses=("timed_out",), run_id=run_id)
    assert len(task) == 1
    assert task[0].resolved_by == "timeout"


async def test_resolve_from_non_owner_reaches_owner(make_engine: EngineFactory, store: Store) -> None:
    # Another engine (the CLI while the window owns the run) resolves the task in the shared store.
    owner, log = await make_engine()
    other, _ = await make_engine()
    run_id, task_id = await start_waiting(owner, store, review_workflow())

    await other.resolve_task(task_id, "approve", {"heading": "From CLI"}, actor="cli")

    await log.wait_for(lambda event: event.run_id == run_id and event.type in RUN_TERMINAL_EVENTS, timeout_s=10)
    summary = await owner.wait(run_id)
    assert summary.status == "completed", summary.error
    assert summary.result == {"use": "From CLI x2"}
    assert not other.is_live(run_id)


async def test_pause_while_waiting_for_a_person(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    human = {"id": "ask", "type": "human_task", "config": {"title": "Go on?", "fields": []}}
    workflow = build_workflow([human, lua_step("after", "return 1", {"x": "{{steps.ask.result}}"})])
    run_id = await studio.run_workflow(workflow)
    assert (await studio.wait(run_id)).status == "waiting"

    await studio.pause(run_id)
    assert (await asyncio.wait_for(studio.wait(run_id), 10)).status == "paused"

    [task] = store.list_tasks(run_id=run_id)
    await studio.resolve_task(task.id, "approve")
    # The decision ends the human step, but nothing after it starts before the resume.
    assert (await asyncio.wait_for(studio.wait(run_id), 10)).status == "paused"
    assert "after" not in store.step_runs(run_id)

    await studio.resume(run_id)
    summary = await asyncio.wait_for(studio.wait(run_id), 10)
    assert summary.status == "completed", summary.error
    assert summary.result == {"after": 1}
