"""The ``studio`` command line: validate and run workflows, list runs, resolve human tasks, resume runs.

With no arguments it opens the desktop window. Exit codes of commands that run workflows:
0 completed, 1 failed, 2 invalid usage or input, 3 stopped, 4 waiting for a human task, 5 paused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import JsonValue

EXIT_CODES = {"completed": 0, "failed": 1, "stopped": 3, "waiting": 4, "paused": 5}
EXIT_USAGE = 2

logger = logging.getLogger(__name__)


class CliError(Exception):
    """An error shown as one line on stderr, with exit code 2."""


def _parse_assignments(pairs: Sequence[str], option: str) -> dict[str, JsonValue]:
    """Parse ``name=value`` pairs; values that are valid JSON keep their type, others are text."""
    values: dict[str, JsonValue] = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator or not name:
            raise CliError(f"{option} '{pair}' is invalid; write {option} name=value")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    return values


def _open_store(args: argparse.Namespace) -> Any:
    from studio.store import open_store

    return open_store(Path(args.db) if args.db else None)


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
        elif action == "resume" and args.run_id:
            run = store.find_run(args.run_id)
            target = run.id
            if run.status == "paused":
                await engine.resume(run.id)
            elif not engine.is_live(run.id):
                raise CliError(f"run {run.id} is {run.status}; there is nothing to resume")
        watched = [run_id for run_id in [*resumed, target] if run_id is not None]
        summaries = await _settle_all(engine, list(dict.fromkeys(watched)))
        if target is not None:
            _print_summary(summaries[target], args.json)
            return EXIT_CODES.get(summaries[target].status, 1)
        for summary in summaries.values():
            _print_summary(summary, args.json)
        if not summaries and not args.json:
            print("No interrupted runs to resume.")
        worst = max((EXIT_CODES.get(s.status, 1) for s in summaries.values()), default=0)
        return 0 if worst in (0, 4, 5) else worst
    finally:
        await engine.aclose()
        store.close()


async def _run_engine_command_reporting_errors(args: argparse.Namespace, action: str) -> int:
    from studio.engine import EngineError

    try:
        return await _run_engine_command(args, action)
    except EngineError as error:
        raise CliError(str(error)) from None


async def _start_from_file(engine: Any, args: argparse.Namespace) -> str:
    from studio.model.document import load_workflow
    from studio.model.validation import has_errors, validate_workflow

    workflow = load_workflow(args.file)
    findings = validate_workflow(workflow)
    if has_errors(findings):
        lines = [f"  {f.step_id or 'workflow'}: {f.message}" for f in findings if f.severity == "error"]
        raise CliError(f"{args.file} has validation errors; fix them first:\n" + "\n".join(lines))
    inputs = _parse_assignments(args.input or [], "--input")
    return str(await engine.run_workflow(workflow, inputs))


async def _resolve_task(engine: Any, store: Any, args: argparse.Namespace) -> str:
    values = _parse_assignments(args.field or [], "--field")
    if args.comment:
        values["comment"] = args.comment
    task = store.get_task(args.task_id)
    await engine.resolve_task(task.id, args.decision, values, actor=args.actor)
    print(f"Task {task.id} {args.decision}d; continuing run {task.run_id}", file=sys.stderr)
    return str(task.run_id)


def cmd_runs(args: argparse.Namespace) -> int:
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
            print(f"{run.id[:8]:<10}{run.status:<11}{created:<21}{duration:>10}  {names.get(run.workflow_id, '?')}")
        return 0
    finally:
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
    run.add_argument("file")
    run.add_argument(
        "--input", "-i", action="append", metavar="NAME=VALUE", help="run input; JSON values keep their type"
    )
    run.add_argument("--json", action="store_true", help="print events and the summary as JSON lines")

    runs = commands.add_parser("runs", help="list recent runs")
    runs.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    runs.add_argument("--limit", type=int, default=20, help="maximum number of runs listed (default 20)")
    runs.add_argument("--json", action="store_true")

    tasks = commands.add_parser("tasks", help="list pending human tasks")
    tasks.add_argument("--json", action="store_true")

    task = commands.add_parser("task", help="approve or reject a human task, then continue its run")
    task.add_argument("decision", choices=["approve", "reject"])
    task.add_argument("task_id", help="task id (a unique prefix of at least 4 characters is enough)")
    task.add_argument("--field", "-f", action="append", metavar="NAME=VALUE", help="form value")
    task.add_argument("--comment", help="a note kept with the decision")
    task.add_argument("--actor", default="cli user", help="who resolves the task (recorded)")
    task.add_argument("--json", action="store_true")

    resume = commands.add_parser("resume", help="continue interrupted runs, or a paused run given its id")
    resume.add_argument("run_id", nargs="?")
    resume.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
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
