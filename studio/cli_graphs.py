"""Command line for shared graphs and workflow versions: export, import, publish, versions and diff."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from studio.model.diff import StepDiff, WorkflowDiff, diff_workflows
from studio.model.document import DocumentError, load_workflow
from studio.model.shared_graph import (
    SHARED_GRAPH_FORMAT,
    ImportMapping,
    SharedGraph,
    SharedGraphError,
    load_shared_graph,
    step_slots,
    write_text_atomically,
)
from studio.model.workflow import McpCallStep, Workflow
from studio.store import Store, StoreError
from studio.store import workflow_library as library

logger = logging.getLogger(__name__)

COMMANDS = ("export", "import", "publish", "versions", "diff")
EXIT_BLOCKED = 1
EXIT_USAGE = 2
UNBOUND_WORDS = ("", "none", "unbound")
"""``--map`` values that leave a server or slot unbound."""


class GraphCliError(Exception):
    """An error shown as one line on stderr, with exit code 2."""


def _echo(text: str, *, file: TextIO | None = None) -> None:
    """Write one line of the command's own output (``print`` is reserved for the main CLI module)."""
    (file or sys.stdout).write(text + "\n")


def add_commands(subparsers: Any) -> None:
    """Add the export, import, publish, versions and diff commands to the ``studio`` parser."""
    target_help = "a workflow file, or the name or id (a prefix of at least 4 characters) of a stored workflow"
    export = subparsers.add_parser("export", help="write a workflow as a shared graph, without local ids or secrets")
    export.add_argument("workflow", metavar="WORKFLOW_FILE_OR_ID", help=target_help)
    export.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write, or - for stdout")
    export.add_argument("--version", type=int, metavar="N", help="export published version N instead of the draft")

    imported = subparsers.add_parser("import", help="create a new draft workflow from a shared-graph file")
    imported.add_argument("file")
    imported.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="NAME=LOCAL_ID",
        help="bind a server_url to an MCP instance id, or a credential slot to a connection id "
        "(repeatable; 'NAME=none' leaves it unbound); unambiguous matches are made without it",
    )
    imported.add_argument("--project", metavar="PROJECT_ID", help="project of the new workflow (default: the default)")
    imported.add_argument("--json", action="store_true", help="print the new workflow's id and bindings as JSON")

    publish = subparsers.add_parser("publish", help="save a workflow as the draft and publish it as a version")
    publish.add_argument("workflow", metavar="FILE", help=target_help)
    publish.add_argument("--note", required=True, help="what changed in this version (shown in the versions list)")

    versions = subparsers.add_parser("versions", help="list the published versions of a workflow")
    versions.add_argument("workflow", metavar="WORKFLOW", help=target_help)
    versions.add_argument("--json", action="store_true", help="print the versions as JSON")

    diff = subparsers.add_parser("diff", help="compare two workflow documents step by step")
    side_help = "a workflow file, WORKFLOW (its draft) or WORKFLOW@N (published version N)"
    diff.add_argument("a", metavar="A", help=side_help)
    diff.add_argument("b", metavar="B", help=side_help)
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")


def handle(args: argparse.Namespace) -> int | None:
    """Run the command in ``args`` if it is one of this module's; return None otherwise."""
    if getattr(args, "command", None) not in COMMANDS:
        return None
    handlers = {
        "export": _export,
        "import": _import,
        "publish": _publish,
        "versions": _versions,
        "diff": _diff,
    }
    try:
        store = _open_store(args)
        try:
            return handlers[args.command](store, args)
        finally:
            store.close()
    except library.PublishBlockedError as error:
        _echo(f"error: {error}", file=sys.stderr)
        return EXIT_BLOCKED
    except (GraphCliError, SharedGraphError, DocumentError, StoreError) as error:
        _echo(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _open_store(args: argparse.Namespace) -> Store:
    from sqlalchemy.exc import DatabaseError

    from studio.store import default_database_path, open_store

    db = getattr(args, "db", None) or os.environ.get("STUDIO_DB")
    path = Path(db) if db else default_database_path()
    try:
        return open_store(path)
    except (OSError, DatabaseError) as error:
        reason = str(error.orig) if isinstance(error, DatabaseError) else str(error)
        raise GraphCliError(
            f"cannot open the database '{path}': {reason}; pass --db with the path of a writable SQLite file"
        ) from None


# -- resolving workflows ------------------------------------------------------------------------


def load_target(store: Store, text: str, *, shared_graphs: bool = False) -> tuple[Workflow, str]:
    """Return the workflow that ``text`` names (a file, WORKFLOW or WORKFLOW@N) and a label for it.

    With ``shared_graphs``, a shared-graph file gives its embedded workflow (with a fresh id).
    """
    if Path(text).is_file():
        if _is_shared_graph(Path(text)):
            if not shared_graphs:
                raise GraphCliError(f"{text} is a shared graph; import it with 'studio import {text}'")
            return load_shared_graph(text).build_workflow(), text
        return load_workflow(text), text
    name, separator, version = text.rpartition("@")
    if separator and name and not Path(text).exists():
        workflow_id = library.find_workflow(store, name)
        if version == "draft":
            return library.get_draft(store, workflow_id), f"{name} (draft)"
        if not version.isdigit():
            raise GraphCliError(f"version '{version}' in '{text}' is invalid; write WORKFLOW@N or WORKFLOW@draft")
        return library.get_version_by_number(store, workflow_id, int(version)).workflow, f"{name} version {version}"
    if text.endswith(".json"):
        raise GraphCliError(f"file '{text}' was not found; check the path")
    workflow_id = library.find_workflow(store, text)
    draft = store.get_draft(workflow_id)
    if draft is not None:
        return draft, f"{text} (draft)"
    versions = store.list_versions(workflow_id)
    if not versions:
        raise GraphCliError(f"workflow '{text}' has no draft and no published version")
    return versions[-1].workflow, f"{text} version {versions[-1].number}"


def _is_shared_graph(path: Path) -> bool:
    """Return whether ``path`` is readable JSON with the shared-graph ``format``; False on any read problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("format") == SHARED_GRAPH_FORMAT


# -- export and import --------------------------------------------------------------------------


def _export(store: Store, args: argparse.Namespace) -> int:
    if args.version is not None:
        workflow_id = library.find_workflow(store, args.workflow)
        workflow = library.get_version_by_number(store, workflow_id, args.version).workflow
    else:
        workflow, _label = load_target(store, args.workflow)
    graph = library.export_workflow(store, workflow)
    text = graph.to_json()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    _write_atomically(Path(args.output), text)
    _echo(
        f"Exported '{workflow.name}' to {args.output}: {len(graph.servers)} MCP servers, "
        f"{len(graph.credentials)} credential slots"
    )
    return 0


def _write_atomically(path: Path, text: str) -> None:
    if path.is_dir():
        raise GraphCliError(f"output '{path}' is a directory; give a file name such as {path / 'graph.json'}")
    if not path.parent.is_dir():
        raise GraphCliError(f"folder '{path.parent}' does not exist; create it or choose another output path")
    write_text_atomically(path, text)


def _import(store: Store, args: argparse.Namespace) -> int:
    graph = load_shared_graph(args.file)
    mapping = library.match_local(store, graph)
    _apply_map_options(graph, mapping, args.map, args.file)
    missing = mapping.missing(graph)
    if missing:
        raise GraphCliError(_missing_message(args.file, missing, graph, store))
    workflow = library.import_graph(store, graph, mapping, project_id=args.project)
    _warn_unbound_commands(graph, mapping)
    if args.json:
        bindings = {"servers": mapping.servers, "slots": mapping.slots}
        _echo(json.dumps({"workflow_id": workflow.id, "name": workflow.name, **bindings}))
        return 0
    _echo(f"Imported '{workflow.name}' as a new draft workflow {workflow.id}")
    for server_url, instance_id in mapping.servers.items():
        _echo(f"  server {server_url} -> {instance_id or 'unbound (uses the server_url)'}")
    for slot, connection_id in mapping.slots.items():
        _echo(f"  credential slot {slot} -> {connection_id or 'unbound'}")
    return 0


def _warn_unbound_commands(graph: SharedGraph, mapping: ImportMapping) -> None:
    """Warn about unbound stdio servers: the engine runs their command line, which the file chose."""
    steps = [step for step in graph.build_workflow().iter_steps() if isinstance(step, McpCallStep)]
    for server in graph.servers:
        if mapping.servers.get(server.server_url) is None and server.server_url.startswith("stdio:"):
            step_ids = [step.id for step in steps if step.config.server_url == server.server_url]
            label = "step" if len(step_ids) == 1 else "steps"
            _echo(
                f"warning: {label} {', '.join(step_ids)} will run the command "
                f"{server.server_url.removeprefix('stdio:')} on this machine; check it before running the workflow",
                file=sys.stderr,
            )


def _apply_map_options(graph: SharedGraph, mapping: ImportMapping, pairs: Sequence[str], source: str) -> None:
    servers = {server.server_url for server in graph.servers}
    slots = {slot.slot for slot in step_slots(graph)}
    for pair in pairs:
        name, separator, value = pair.rpartition("=")
        if not separator or not name:
            raise GraphCliError(
                f"--map '{pair}' is invalid; write --map server_url=INSTANCE_ID or --map slot=CONNECTION_ID"
            )
        local_id = None if value.strip().lower() in UNBOUND_WORDS else value.strip()
        if name in servers:
            mapping.servers[name] = local_id
        elif name in slots:
            mapping.slots[name] = local_id
        else:
            needs = sorted(servers) + sorted(slots)
            raise GraphCliError(
                f"--map '{pair}': '{name}' is not a server_url or credential slot of {source}; "
                f"it needs: {', '.join(needs) or 'nothing'}"
            )


def _missing_message(source: str, missing: list[str], graph: SharedGraph, store: Store) -> str:
    lines = [f"{source} needs a choice for: {', '.join(missing)}. No single local match was found."]
    server_urls = {server.server_url for server in graph.servers}
    for instance in library.local_instances(store):
        if instance.server_url in server_urls:
            lines.append(f"  candidate MCP instance {instance.id} ({instance.name}) for {instance.server_url}")
    for connection in library.local_connections(store):
        lines.append(f"  candidate connection {connection.id} ({connection.name}, {connection.kind})")
    lines.append("Pass --map NAME=LOCAL_ID for each, or --map NAME=none to leave it unbound")
    return "\n".join(lines)


# -- publish, versions, diff --------------------------------------------------------------------


def _publish(store: Store, args: argparse.Namespace) -> int:
    if not args.note.strip():
        raise GraphCliError("--note is empty; say what changed in this version")
    workflow, label = load_target(store, args.workflow)
    known = {version.content_hash: version.number for version in store.list_versions(workflow.id)}
    version = library.publish(store, workflow, args.note)
    if version.content_hash in known:
        _echo(f"'{workflow.name}' from {label} is already published as version {version.number}; nothing changed")
    else:
        _echo(f"Published '{workflow.name}' as version {version.number} (workflow {workflow.id})")
    return 0


def _versions(store: Store, args: argparse.Namespace) -> int:
    workflow_id = library.find_workflow(store, args.workflow)
    versions = store.list_versions(workflow_id)
    if args.json:
        rows = [
            {
                "number": version.number,
                "id": version.id,
                "created_at": version.created_at,
                "content_hash": version.content_hash,
                "note": version.note,
            }
            for version in versions
        ]
        _echo(json.dumps({"workflow_id": workflow_id, "versions": rows}))
        return 0
    if not versions:
        _echo(f"Workflow {workflow_id} has no published versions; publish one with 'studio publish'")
        return 0
    for version in reversed(versions):
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(version.created_at))
        _echo(f"v{version.number:<4} {stamp}  {version.content_hash[7:19]}  {version.note}")
    return 0


def _diff(store: Store, args: argparse.Namespace) -> int:
    old, old_label = load_target(store, args.a, shared_graphs=True)
    new, new_label = load_target(store, args.b, shared_graphs=True)
    result = diff_workflows(old, new)
    if args.json:
        _echo(json.dumps(diff_to_data(result)))
        return 0
    _echo(f"{old_label} -> {new_label}: {result.summary()}")
    for item in result.steps.values():
        _echo(_step_line(item))
        for change in item.changes:
            _echo(f"      {change.path}: {_short(change.old)} -> {_short(change.new)}")
    for edge in result.edges_added:
        _echo(f"  + edge {edge.describe()}")
    for edge in result.edges_removed:
        _echo(f"  - edge {edge.describe()}")
    for marks, note_ids in (("+", result.notes_added), ("-", result.notes_removed), ("~", result.notes_changed)):
        for note_id in note_ids:
            _echo(f"  {marks} note {note_id}")
    for change in result.workflow_changes:
        _echo(f"  workflow {change.path}: {_short(change.old)} -> {_short(change.new)}")
    return 0


def _step_line(item: StepDiff) -> str:
    marks = {"added": "+", "removed": "-", "changed": "~", "moved": ">"}
    where = "" if item.container is None else f" in {item.container}"
    return f"  {marks[item.status]} {item.step_id} ({item.step_type}{where}) {item.status}"


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_to_data(result: WorkflowDiff) -> dict[str, Any]:
    """Return the diff as JSON data (used by ``studio diff --json``)."""
    return {
        "summary": result.summary(),
        "steps": [
            {
                "step_id": item.step_id,
                "status": item.status,
                "step_type": item.step_type,
                "container": item.container,
                "moved": item.moved,
                "changes": [
                    {"path": change.path, "kind": change.kind, "old": change.old, "new": change.new}
                    for change in item.changes
                ],
            }
            for item in result.steps.values()
        ],
        "edges_added": [edge.__dict__ for edge in result.edges_added],
        "edges_removed": [edge.__dict__ for edge in result.edges_removed],
        "notes_added": result.notes_added,
        "notes_removed": result.notes_removed,
        "notes_changed": result.notes_changed,
        "workflow_changes": [change.__dict__ for change in result.workflow_changes],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of this module's commands on its own (``python -m studio.cli_graphs``)."""
    parser = argparse.ArgumentParser(prog="studio", description="Shared graphs and workflow versions.")
    parser.add_argument("--db", help="path of the SQLite database")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = handle(args)
    return EXIT_USAGE if result is None else result


if __name__ == "__main__":
    sys.exit(main())
