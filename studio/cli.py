"""The ``studio`` command line: validate and run workflows, list runs, resolve human tasks, resume runs.

With no arguments it opens the desktop window. Exit codes of commands that run workflows
(``run``, ``task``, ``resume``, ``runs rerun``): 0 completed, 1 failed, 2 invalid usage or input,
3 stopped, 4 waiting for a human task, 5 paused.

``runs pause`` and ``runs stop`` exit 0 once the run is paused or stopped. A run that waits for a
human task accepts a pause at once and pauses when the task is resolved. They exit 2 on invalid
usage or when the run's status does not allow the action. They exit 6 when the action has not
taken effect within ``--timeout``, and a request to another process then stays recorded and is
applied later. ``runs resume``
exits the same way when another process continues the run; when this process continues it, the
command follows the run and exits like ``run``. ``runs compare`` exits 0 when every step has the
same status and output in both runs, 1 when they differ, 2 on invalid usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import JsonValue

from studio.startup import freeze_startup_objects

RUN_STATUSES = ("created", "running", "waiting", "paused", "completed", "failed", "stopped")
"""Every status a run can have, in lifecycle order."""

EXIT_CODES = {"completed": 0, "failed": 1, "stopped": 3, "waiting": 4, "paused": 5}
EXIT_USAGE = 2
EXIT_DIFFERENT = 1
EXIT_TIMEOUT = 6

logger = logging.getLogger(__name__)


class CliError(Exception):
    """An error shown as one line on stderr, with exit code 2."""


def _parse_assignments(pairs: Sequence[str], option: str) -> dict[str, JsonValue]:
    """Parse ``name=value`` pairs; values that are valid JSON keep their type, others are text.

    NaN, Infinity and numbers too large for a float are not JSON numbers, so they stay text.
    """
    values: dict[str, JsonValue] = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator or not name:
            raise CliError(f"{option} '{pair}' is invalid; write {option} name=value")
        try:
            values[name] = json.loads(text, parse_constant=_finite_float, parse_float=_finite_float)
        except (ValueError, RecursionError):
            values[name] = text
    return values


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is not a finite number")
    return number


def _open_store(args: argparse.Namespace) -> Any:
    from sqlalchemy.exc import DatabaseError

    from studio.store import default_database_path, open_store

    path = Path(args.db) if args.db else default_database_path()
    try:
        return open_store(path)
    except (OSError, DatabaseError) as error:
        if isinstance(error, DatabaseError):
            reason = str(error.orig)
        else:
            reason = f"{error.strerror} ('{error.filename}')" if error.filename else str(error)
        raise CliError(
            f"cannot open the database '{path}': {reason}; pass --db with the path of a writable SQLite "
            "file, or set STUDIO_DATA_DIR to a writable directory"
        ) from None


# -- output -------------------------------------------------------------------------------------


class EventPrinter:
    """Prints run events as they arrive: one readable line each, or JSON lines with ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._open_delta = False

    def __call__(self, event: Any) -> None:
        if self.as_json:
            print(json.dumps(event.to_json(), ensure_ascii=False), flush=True)
            return
        kind = event.type.value
        if kind == "llm_token_delta":
            sys.stdout.write(str(event.data.get("text", "")))
            sys.stdout.flush()
            self._open_delta = True
            return
        if self._open_delta:
            sys.stdout.write("\n")
            self._open_delta = False
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at)) + f".{int(event.at * 1000) % 1000:03d}"
        subject = event.step_key or event.run_id[:8]
        print(f"{stamp}  {kind:<15} {subject}{_event_detail(event)}", flush=True)


def _event_detail(event: Any) -> str:
    data = event.data
    kind = event.type.value
    if kind == "step_started":
        return f"  (attempt {data.get('attempt')})" if data.get("attempt", 1) != 1 else ""
    if kind == "step_completed":
        duration = data.get("duration_s")
        text = _short_json(data.get("result"))
        if data.get("pinned"):
            text = f"pinned {text}"
        elif data.get("reused_from"):
            text = f"reused from run {str(data['reused_from'])[:8]} {text}"
        return f"  {duration:.3f}s  {text}" if isinstance(duration, float) else f"  {text}"
    if kind in ("step_failed", "run_failed"):
        error = data.get("error") or {}
        return f"  {error.get('message', '')}" if isinstance(error, dict) else ""
    if kind == "step_retrying":
        error = data.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else ""
        return f"  attempt {data.get('attempt')} in {data.get('delay_s')}s after: {message}"
    if kind == "step_waiting":
        task_id = data.get("task_id")
        if data.get("kind") == "elicitation":
            return (
                f"  MCP input request {task_id}: answer from another terminal with "
                f"'studio task accept|decline|cancel {task_id}'; this process keeps the call open"
            )
        return f"  human task {task_id}: approve with 'studio task approve {task_id}'"
    if kind == "step_log":
        return f"  [{data.get('level')}] {data.get('message')}"
    if kind == "step_progress":
        total = data.get("total")
        progress = f"{data.get('progress')}/{total}" if total else str(data.get("progress"))
        return f"  {progress} {data.get('message') or ''}".rstrip()
    if kind == "task_resolved":
        return f"  {data.get('decision')} by {data.get('actor')}"
    if kind == "step_skipped":
        return f"  {data.get('reason')}"
    if kind == "run_stopped":
        cancelled = data.get("cancelled") or []
        return f"  cancelled: {', '.join(cancelled)}" if cancelled else ""
    return ""


def _short_json(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        payload = {"type": "summary", "run_id": summary.run_id, "status": summary.status}
        payload.update({"result": summary.result, "error": summary.error})
        print(json.dumps(payload, ensure_ascii=False), flush=True)
        return
    print(f"\nRun {summary.run_id} {summary.status}.")
    if summary.status == "completed":
        print(json.dumps(summary.result, indent=2, ensure_ascii=False))
    elif summary.status == "failed" and isinstance(summary.error, dict):
        print(f"error in step {summary.error.get('step_key')}: {summary.error.get('message')}", file=sys.stderr)
    elif summary.status == "waiting":
        print("The run waits for a human task; list pending tasks with 'studio tasks'.")
    elif summary.status == "paused":
        print(f"Resume it with 'studio resume {summary.run_id}'.")


# -- commands -----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from studio.model.document import load_workflow
    from studio.model.validation import has_errors, validate_workflow

    workflow = load_workflow(args.file)
    findings = validate_workflow(workflow)
    if args.json:
        print(json.dumps([finding.__dict__ for finding in findings], indent=2))
    else:
        for finding in findings:
            where = finding.step_id or "workflow"
            if finding.field_path:
                where += f" {finding.field_path}"
            print(f"{args.file}: {finding.severity}: {where}: {finding.message} [{finding.code}]")
        errors = sum(1 for finding in findings if finding.severity == "error")
        steps = len(list(workflow.iter_steps()))
        print(f"{len(findings)} finding(s), {errors} error(s) in '{workflow.name}' ({steps} steps)")
    return 1 if has_errors(findings) else 0


async def _settle_all(engine: Any, run_ids: Sequence[str]) -> dict[str, Any]:
    summaries = {}
    for run_id in run_ids:
        summaries[run_id] = await engine.wait(run_id)
    return summaries


async def _run_engine_command(args: argparse.Namespace, action: str) -> int:
    from studio.engine import Engine

    store = _open_store(args)
    engine = Engine(store)
    freeze_startup_objects()
    printer = EventPrinter(args.json)
    engine.add_listener(printer)
    try:
        resumed = await engine.resume_interrupted()
        for run_id in resumed:
            print(f"Resuming interrupted run {run_id}", file=sys.stderr)
        target: str | None = None
        if action == "run":
            target = await _start_from_file(engine, args)
        elif action == "task":
            target = await _resolve_task(engine, store, args)
            if not engine.is_live(target) and store.get_run(target).owner is not None:
                # Another process executes the run (a window, or the 'studio run' that keeps an MCP
                # input request open); it picks the answer up from the store and continues.
                print(f"Run {target} continues in the process that executes it.", file=sys.stderr)
                return 0
        elif action == "resume" and args.run_id:
            run = store.find_run(args.run_id)
            target = run.id
            if run.status == "paused":
                await engine.resume(run.id)
            elif not engine.is_live(run.id):
                raise CliError(f"run {run.id} is {run.status}; there is nothing to resume")
        watched = [run_id for run_id in [*resumed, target] if run_id is not None]
        summaries = await _settle_all(engine, list(dict.fromkeys(watched)))
        for run_id, summary in summaries.items():
            summaries[run_id] = await _wait_out_elicitations(engine, store, summary)
        if target is not None:
            _print_summary(summaries[target], args.json)
            return EXIT_CODES.get(summaries[target].status, 1)
        for summary in summaries.values():
            _print_summary(summary, args.json)
        if not summaries and not args.json:
            print("No interrupted runs to resume.")
        # A run left waiting or paused is no error here, so its higher code must not hide a failed run.
        codes = [EXIT_CODES.get(summary.status, 1) for summary in summaries.values()]
        return max((code for code in codes if code not in (0, 4, 5)), default=0)
    finally:
        await engine.aclose()
        store.close()


ELICITATION_POLL_S = 0.25
"""How often a CLI process that keeps an MCP call open checks whether its input request was answered."""

ANSWER_PICKUP_S = 10.0
"""How long the run may still show as waiting after its last input request was answered."""


async def _wait_out_elicitations(engine: Any, store: Any, summary: Any) -> Any:
    """Keep waiting while the run waits only for MCP input requests whose calls this process keeps open.

    An MCP server's input request belongs to a live tool call, so it cannot outlive this process the
    way a human task does: exiting would cancel the call. The answer comes from another process
    ('studio task accept ...'), which this engine notices through the store.
    """
    answered_at: float | None = None
    while summary.status == "waiting" and engine.is_live(summary.run_id):
        pending = store.list_tasks(run_id=summary.run_id)
        if any(not _is_elicitation(task) for task in pending):
            break  # A human task outlives this process; the run is resumed when it is resolved.
        if not pending:
            # Resolved elsewhere: the engine reads the decision from the store at its next control poll.
            answered_at = answered_at or time.monotonic()
            if time.monotonic() - answered_at > ANSWER_PICKUP_S:
                break
        await asyncio.sleep(ELICITATION_POLL_S)
        summary = await engine.wait(summary.run_id)
    return summary


def _is_elicitation(task: Any) -> bool:
    return isinstance(task.context, dict) and task.context.get("kind") == "elicitation"


async def _run_engine_command_reporting_errors(args: argparse.Namespace, action: str) -> int:
    from studio.engine import EngineError

    try:
        return await _run_engine_command(args, action)
    except EngineError as error:
        raise CliError(str(error)) from None


async def _start_from_file(engine: Any, args: argparse.Namespace) -> str:
    from studio.cli_graphs import GraphCliError, load_target
    from studio.model.document import load_workflow
    from studio.model.validation import has_errors, validate_workflow

    if Path(args.file).is_file():
        workflow = load_workflow(args.file)
    else:
        # A stored workflow: WORKFLOW runs its draft (else its latest version), WORKFLOW@N a version.
        try:
            workflow, _label = load_target(engine.store, args.file)
        except GraphCliError as error:
            raise CliError(str(error)) from None
    findings = validate_workflow(workflow)
    if has_errors(findings):
        lines = [f"  {f.step_id or 'workflow'}: {f.message}" for f in findings if f.severity == "error"]
        raise CliError(f"{args.file} has validation errors; fix them first:\n" + "\n".join(lines))
    inputs = _keep_text_for_string_inputs(
        _parse_assignments(args.input or [], "--input"), args.input or [], workflow.input_schema
    )
    return str(await engine.run_workflow(workflow, inputs))


def _keep_text_for_string_inputs(
    values: dict[str, JsonValue], pairs: Sequence[str], schema: Mapping[str, Any] | None
) -> dict[str, JsonValue]:
    """Keep the text of inputs the input schema declares as strings, so ``zip=01234`` stays "01234"."""
    properties = (schema or {}).get("properties") or {}
    texts = {name: text for name, _, text in (pair.partition("=") for pair in pairs)}
    for name, value in values.items():
        declared = properties.get(name) if isinstance(properties, Mapping) else None
        if isinstance(declared, Mapping) and declared.get("type") == "string" and not isinstance(value, str):
            values[name] = texts[name]
    return values


async def _resolve_task(engine: Any, store: Any, args: argparse.Namespace) -> str:
    values = _parse_assignments(args.field or [], "--field")
    if args.comment:
        values["comment"] = args.comment
    task = store.get_task(args.task_id)
    await engine.resolve_task(task.id, args.decision, values, actor=args.actor)
    done = {"approve": "approved", "reject": "rejected", "accept": "accepted", "decline": "declined"}
    print(f"Task {task.id} {done.get(args.decision, 'cancelled')}; continuing run {task.run_id}", file=sys.stderr)
    return str(task.run_id)


def cmd_runs(args: argparse.Namespace) -> int:
    if args.runs_command == "show":
        return cmd_runs_show(args)
    if args.runs_command == "compare":
        return cmd_runs_compare(args)
    if args.runs_command in ("pause", "resume", "stop"):
        return asyncio.run(_control_command(args))
    if args.runs_command == "rerun":
        return asyncio.run(_rerun_command(args))
    return cmd_runs_list(args)


def cmd_runs_list(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        runs = store.list_runs(statuses=args.status or None, limit=args.limit)
        names = store.workflow_names(run.workflow_id for run in runs)
        if args.json:
            rows = [
                {
                    "id": run.id,
                    "workflow": names.get(run.workflow_id, run.workflow_id),
                    "status": run.status,
                    "created_at": run.created_at,
                    "finished_at": run.finished_at,
                    "parent_run_id": run.parent_run_id,
                    "is_test": run.is_test,
                }
                for run in runs
            ]
            print(json.dumps(rows, indent=2))
            return 0
        if not runs:
            print("No runs yet. Start one with 'studio run FILE'.")
            return 0
        print(f"{'RUN':<10}{'STATUS':<11}{'CREATED':<21}{'DURATION':>10}  WORKFLOW")
        for run in runs:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
            end = run.finished_at or time.time()
            duration = f"{end - (run.started_at or run.created_at):.1f}s"
            note = " (test run)" if run.is_test else ""
            name = names.get(run.workflow_id, "?")
            print(f"{run.id[:8]:<10}{run.status:<11}{created:<21}{duration:>10}  {name}{note}")
        return 0
    finally:
        store.close()


def cmd_runs_show(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        run = store.find_run(args.run_id)
        version = store.get_version(run.version_id)
        name = store.workflow_names([run.workflow_id]).get(run.workflow_id, run.workflow_id)
        steps = sorted(store.step_runs(run.id).values(), key=lambda row: (row.started_at or 0.0, row.step_key))
        events = store.events(run.id)
        if args.json:
            payload = {
                "run": {**run.__dict__, "workflow": name, "version": version.number},
                "steps": [{**row.__dict__, "duration_s": _row_duration(row)} for row in steps],
                "events": events,
            }
            print(json.dumps(payload, indent=2, ensure_ascii=False))
            return 0
        _print_run_header(run, name, version.number)
        _print_step_table(steps)
        print("\nEvents:")
        for event in events:
            stored = SimpleNamespace(type=SimpleNamespace(value=event["type"]), data=event["data"])
            subject = event["step_key"] or ""
            print(f"  {_format_stamp(event['at'])}  {event['type']:<15} {subject}{_event_detail(stored)}")
        return 0
    finally:
        store.close()


def _row_duration(row: Any) -> float | None:
    if row.started_at is None or row.finished_at is None:
        return None
    return float(round(row.finished_at - row.started_at, 6))


def _print_run_header(run: Any, name: str, version_number: int) -> None:
    kind = "test snapshot" if run.is_test else "version"
    print(f"Run {run.id}  {run.status}")
    print(f"  workflow {name}, {kind} {version_number}, created {_format_stamp(run.created_at)}")
    if run.parent_run_id:
        print(f"  re-run of {run.parent_run_id}")
    if run.owner:
        print(f"  executed by {run.owner}")
    if run.requested_action:
        print(f"  {run.requested_action} requested by {run.requested_by}, not applied yet")
    if isinstance(run.error, dict):
        print(f"  error in step {run.error.get('step_key')}: {run.error.get('message')}")


def _print_step_table(steps: Sequence[Any]) -> None:
    if not steps:
        print("\nNo steps ran.")
        return
    width = max(12, *(len(row.step_key) for row in steps)) + 2
    print(f"\n{'STEP':<{width}}{'STATUS':<11}{'ATTEMPT':>7}{'DURATION':>10}  NOTE")
    for row in steps:
        duration = _row_duration(row)
        duration_text = "" if duration is None else f"{duration:.3f}s"
        print(f"{row.step_key:<{width}}{row.status:<11}{row.attempt:>7}{duration_text:>10}  {_step_note(row)}")


def _step_note(row: Any) -> str:
    if row.pinned:
        return "pinned output"
    if row.reused_from:
        return f"reused from run {row.reused_from[:8]}"
    if isinstance(row.error, dict):
        return str(row.error.get("message", ""))
    return ""


def _format_stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def cmd_runs_compare(args: argparse.Namespace) -> int:
    from studio.engine.compare import CompareError, compare_runs

    store = _open_store(args)
    try:
        first = store.find_run(args.run_a)
        second = store.find_run(args.run_b)
        try:
            comparison = compare_runs(store, first.id, second.id)
        except CompareError as error:
            raise CliError(str(error)) from None
        if args.json:
            print(json.dumps(comparison.to_json(), indent=2, ensure_ascii=False))
        else:
            _print_comparison(comparison, store.workflow_names([comparison.workflow_id]))
        return EXIT_DIFFERENT if comparison.differing else 0
    finally:
        store.close()


def _print_comparison(comparison: Any, names: dict[str, str]) -> None:
    name = names.get(comparison.workflow_id, comparison.workflow_id)
    print(f"A: run {comparison.run_a} ({comparison.status_a})")
    print(f"B: run {comparison.run_b} ({comparison.status_b})")
    print(f"workflow {name}\n")
    width = max(12, *(len(step.step_key) for step in comparison.steps)) + 2 if comparison.steps else 14
    print(f"{'STEP':<{width}}{'STATUS A':<11}{'STATUS B':<11}{'TIME A':>9}{'TIME B':>9}  OUTPUT")
    for step in comparison.steps:
        times = [" " if value is None else f"{value:.3f}s" for value in (step.duration_a, step.duration_b)]
        output = "equal" if step.output_equal else f"{len(step.changes)} difference(s)"
        status_a, status_b = step.status_a or "-", step.status_b or "-"
        print(f"{step.step_key:<{width}}{status_a:<11}{status_b:<11}{times[0]:>9}{times[1]:>9}  {output}")
        for change in step.changes[:20]:
            detail = {
                "added": f"added {_short_json(change.b)}",
                "removed": f"removed {_short_json(change.a)}",
                "changed": f"{_short_json(change.a, 45)} -> {_short_json(change.b, 45)}",
            }[change.change]
            print(f"    {change.path}: {detail}")
        if len(step.changes) > 20:
            print(f"    ... and {len(step.changes) - 20} more; see --json")
    differing = len(comparison.differing)
    print(f"\n{differing} of {len(comparison.steps)} step(s) differ.")


async def _control_command(args: argparse.Namespace) -> int:
    from studio.engine import Engine, EngineError
    from studio.engine.control import ControlTimeout, control_run

    store = _open_store(args)
    engine = Engine(store)
    freeze_startup_objects()
    engine.add_listener(EventPrinter(args.json))
    try:
        run = store.find_run(args.run_id)
        try:
            outcome = await control_run(engine, run.id, args.runs_command, actor=args.actor, timeout_s=args.timeout)
        except ControlTimeout as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_TIMEOUT
        except EngineError as error:
            raise CliError(str(error)) from None
        if outcome.action == "resume" and outcome.route == "adopted":
            summary = await engine.wait(run.id)
            _print_summary(summary, args.json)
            return EXIT_CODES.get(summary.status, 1)
        _print_control_outcome(outcome, args.json)
        return 0
    finally:
        await engine.aclose()
        store.close()


def _print_control_outcome(outcome: Any, as_json: bool) -> None:
    if as_json:
        payload = {"type": "control", **outcome.__dict__}
        print(json.dumps(payload, ensure_ascii=False), flush=True)
        return
    where = "by the process executing it" if outcome.route == "owner" else "in this process"
    print(f"Run {outcome.run_id} is {outcome.status} ({outcome.action} applied {where}).")
    if outcome.action == "stop" and outcome.status == "stopped":
        cancelled = ", ".join(outcome.cancelled) if outcome.cancelled else "none (no step was running)"
        print(f"Cancelled steps: {cancelled}")
    elif outcome.action == "pause" and outcome.status == "waiting":
        print("It waits for a human task and pauses once the task is resolved.")
    elif outcome.action == "pause" and outcome.status == "paused":
        print(f"Resume it with 'studio runs resume {outcome.run_id}'.")


async def _rerun_command(args: argparse.Namespace) -> int:
    from studio.engine import Engine, EngineError

    store = _open_store(args)
    engine = Engine(store)
    freeze_startup_objects()
    engine.add_listener(EventPrinter(args.json))
    try:
        run = store.find_run(args.run_id)
        try:
            new_run_id = await engine.rerun_from(run.id, args.from_step)
        except EngineError as error:
            raise CliError(str(error)) from None
        if not args.json:
            print(f"Re-running run {run.id} from step '{args.from_step}' as run {new_run_id}", file=sys.stderr)
        summary = await engine.wait(new_run_id)
        _print_summary(summary, args.json)
        return EXIT_CODES.get(summary.status, 1)
    finally:
        await engine.aclose()
        store.close()


def cmd_tasks(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        tasks = store.list_tasks()
        names = store.workflow_names(task.workflow_id for task in tasks)
        if args.json:
            rows = [
                {
                    "id": task.id,
                    "title": task.title,
                    "run_id": task.run_id,
                    "workflow": names.get(task.workflow_id, task.workflow_id),
                    "step_key": task.step_key,
                    "created_at": task.created_at,
                    "due_at": task.due_at,
                    "assignee_role": task.assignee_role,
                    "fields": task.fields,
                }
                for task in tasks
            ]
            print(json.dumps(rows, indent=2))
            return 0
        if not tasks:
            print("No pending human tasks.")
            return 0
        now = time.time()
        for task in tasks:
            age = _format_age(now - task.created_at)
            due = f", due in {_format_age(task.due_at - now)}" if task.due_at else ""
            print(f"{task.id}  {task.title}")
            print(
                f"    workflow {names.get(task.workflow_id, '?')}, run {task.run_id[:8]}, step {task.step_key}, "
                f"waiting {age}{due}"
            )
            for field in task.fields:
                required = " (required)" if field.get("required") else ""
                print(f"    --field {field['name']}=<{field.get('type', 'text')}>{required}")
        return 0
    finally:
        store.close()


def _format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def cmd_gui(args: argparse.Namespace) -> int:
    from studio.app.main import run_gui

    return run_gui([args.file] if getattr(args, "file", None) else [])


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio",
        description="Workflow Studio: build and run AI-agent workflows. Without a command it opens the window.",
    )
    parser.add_argument(
        "--db", help="path of the SQLite database (default: $STUDIO_DATA_DIR/studio.db or the user data directory)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine activity to stderr")
    commands = parser.add_subparsers(dest="command")

    gui = commands.add_parser("gui", help="open the desktop window")
    gui.add_argument("file", nargs="?", help="workflow file to open")

    validate = commands.add_parser("validate", help="check a workflow file and list problems")
    validate.add_argument("file")
    validate.add_argument("--json", action="store_true", help="print findings as JSON")

    run = commands.add_parser("run", help="publish a workflow file and run it, printing events as they happen")
    run.add_argument(
        "file", help="workflow file, or a stored workflow: NAME or ID (its draft), NAME@N (published version N)"
    )
    run.add_argument(
        "--input", "-i", action="append", metavar="NAME=VALUE", help="run input; JSON values keep their type"
    )
    run.add_argument("--json", action="store_true", help="print events and the summary as JSON lines")

    runs = commands.add_parser("runs", help="list recent runs, or show, steer, re-run or compare one")
    runs.add_argument("--status", action="append", choices=RUN_STATUSES, help="only runs with this status (repeatable)")
    runs.add_argument("--limit", type=int, default=20, help="maximum number of runs listed (default 20)")
    runs.add_argument("--json", action="store_true")
    _add_runs_commands(runs)

    tasks = commands.add_parser("tasks", help="list pending human tasks")
    tasks.add_argument("--json", action="store_true")

    task = commands.add_parser(
        "task",
        help="approve or reject a human task (accept, decline or cancel an MCP input request), then continue its run",
    )
    task.add_argument("decision", choices=["approve", "reject", "accept", "decline", "cancel"])
    task.add_argument("task_id", help="task id (a unique prefix of at least 4 characters is enough)")
    task.add_argument("--field", "-f", action="append", metavar="NAME=VALUE", help="form value")
    task.add_argument("--comment", help="a note kept with the decision")
    task.add_argument("--actor", default="cli user", help="who resolves the task (recorded)")
    task.add_argument("--json", action="store_true")

    resume = commands.add_parser("resume", help="continue interrupted runs, or a paused run given its id")
    resume.add_argument("run_id", nargs="?")
    resume.add_argument("--json", action="store_true")

    for module in _command_modules():
        module.add_commands(commands)
    return parser


COMMAND_MODULES: tuple[str, ...] = ("studio.cli_connections", "studio.cli_graphs", "studio.cli_mcp")
"""Modules that add commands of their own: each has ``add_commands(subparsers)`` and ``handle(args)``."""


def _command_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(name) for name in COMMAND_MODULES]


def _add_runs_commands(runs: argparse.ArgumentParser) -> None:
    id_help = "run id (a unique prefix of at least 4 characters is enough)"
    commands = runs.add_subparsers(dest="runs_command")
    show = commands.add_parser("show", help="show a run's steps (status, attempts, duration, error) and its events")
    show.add_argument("run_id", help=id_help)
    show.add_argument("--json", action="store_true", help="print the run, its steps and events as one JSON object")
    for action, text in (
        ("pause", "start no new steps; running steps finish, then the run is paused"),
        ("resume", "continue a paused run"),
        ("stop", "cancel the running steps and end the run as stopped"),
    ):
        control = commands.add_parser(action, help=f"{text}, wherever the run is executed")
        control.add_argument("run_id", help=id_help)
        control.add_argument(
            "--timeout",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="how long to wait for the action to take effect (default 30)",
        )
        control.add_argument("--actor", default="cli user", help="who requests the action (recorded)")
        control.add_argument("--json", action="store_true", help="print events and the outcome as JSON lines")
    rerun = commands.add_parser("rerun", help="run again from a step, reusing the results of the other steps")
    rerun.add_argument("run_id", help=id_help)
    rerun.add_argument("--from", dest="from_step", required=True, metavar="STEP", help="id of the first step to run")
    rerun.add_argument("--json", action="store_true", help="print events and the summary as JSON lines")
    compare = commands.add_parser("compare", help="compare two runs of one workflow step by step")
    compare.add_argument("run_a", help=id_help)
    compare.add_argument("run_b", help=id_help)
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # The MCP SDK logs a server's failures with tracebacks. The studio reports each one itself,
        # with the server's stderr and a fix, so the SDK's copy is shown only with --verbose.
        logging.getLogger("mcp").setLevel(logging.CRITICAL)
    if args.db is None:
        import os

        args.db = os.environ.get("STUDIO_DB") or None
    # The engine (MCP, HTTP and Lua libraries) is imported only by commands that run workflows,
    # so validate, runs and tasks start in a fraction of the time.
    from studio.model.document import DocumentError
    from studio.store import StoreError

    try:
        if args.command in (None, "gui"):
            return cmd_gui(args)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "runs":
            return cmd_runs(args)
        if args.command == "tasks":
            return cmd_tasks(args)
        for module in _command_modules():
            code = module.handle(args)
            if code is not None:
                return int(code)
        action = {"run": "run", "task": "task", "resume": "resume"}[args.command]
        return asyncio.run(_run_engine_command_reporting_errors(args, action))
    except (CliError, DocumentError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("\nInterrupted. Unfinished runs are kept; continue them with 'studio resume'.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
