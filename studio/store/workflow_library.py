"""The workflow library of a store: workflows per project, drafts with history, publishing, run-setup defaults.

Every draft save also appends a row to ``draft_revisions``. A draft that another writer saved
without history (``Store.save_draft``) is recorded as a ``kept`` revision before the library
replaces it, so a save or restore through this module never drops the draft content it replaces.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import JsonValue
from sqlalchemy import Connection, and_, func, insert, inspect, select, text, update

from studio.model.document import content_hash, workflow_from_data
from studio.model.shared_graph import (
    ImportMapping,
    LocalConnection,
    LocalInstance,
    SharedGraph,
    export_shared_graph,
    instantiate,
    match_requirements,
    server_url_of_instance,
)
from studio.model.validation import VALIDATION_REVISION, Finding, ToolCatalog, validate_workflow
from studio.model.workflow import Workflow
from studio.store import tables as t
from studio.store.library_tables import draft_revisions, run_setup_defaults
from studio.store.store import NotFoundError, Store, StoreError, VersionRecord, new_id

logger = logging.getLogger(__name__)

DraftState = Literal["new", "published", "modified", "no draft"]
"""``new``: never published. ``published``: the draft equals the latest version. ``modified``: the
draft differs from it. ``no draft``: only published versions exist."""

MAX_LISTED_PROBLEMS = 5
"""How many validation errors a blocked publish names in its message."""
MAX_LISTED_MATCHES = 5
"""How many workflow ids an ambiguous name or id prefix lists in its error."""


class PublishBlockedError(StoreError):
    """A publish refused because validation found errors; ``findings`` lists them all."""

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class WorkflowSummary:
    """One row of the workflow list."""

    id: str
    project_id: str
    name: str
    updated_at: float
    archived: bool
    latest_version: int | None
    latest_version_at: float | None
    draft_state: DraftState
    draft_revision: int | None


@dataclass(frozen=True)
class DraftRevision:
    """One saved content of a workflow's draft."""

    id: str
    workflow_id: str
    revision: int
    content_hash: str
    reason: str
    source_version: int | None
    saved_at: float
    document: dict[str, Any]

    @property
    def workflow(self) -> Workflow:
        return workflow_from_data(self.document, f"draft revision {self.revision} of workflow {self.workflow_id}")


@dataclass(frozen=True)
class DraftSaved:
    """The outcome of a draft save: the draft's revision and whether its content changed."""

    revision: int
    content_hash: str
    changed: bool


# -- projects ------------------------------------------------------------------------------------


def list_projects(store: Store) -> list[ProjectRecord]:
    """Return the projects of the store's workspace, ordered by name."""
    query = select(t.projects.c.id, t.projects.c.slug, t.projects.c.name).where(
        t.projects.c.workspace_id == store.workspace_id
    )
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(t.projects.c.name)).all()
    return [ProjectRecord(row.id, row.slug, row.name) for row in rows]


def create_project(store: Store, name: str) -> ProjectRecord:
    """Create a project named ``name`` in the store's workspace; its slug is derived from the name."""
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise StoreError(f"project name {name!r} is invalid; give 1 to 200 characters")
    base = re.sub(r"[^a-z0-9]+", "-", clean.lower()).strip("-")[:56] or "project"
    with store.engine.begin() as connection:
        used_slugs = set(
            connection.execute(
                select(t.projects.c.slug).where(t.projects.c.workspace_id == store.workspace_id)
            ).scalars()
        )
        slug, number = base, 2
        while slug in used_slugs:
            slug, number = f"{base}-{number}", number + 1
        record = ProjectRecord(new_id(), slug, clean)
        connection.execute(
            insert(t.projects).values(
                id=record.id, workspace_id=store.workspace_id, slug=slug, name=clean, created_at=time.time()
            )
        )
    logger.info("Created project %s (%s)", record.id, slug)
    return record


# -- workflows and drafts ------------------------------------------------------------------------


def list_workflows(
    store: Store, project_id: str | None = None, *, include_archived: bool = False
) -> list[WorkflowSummary]:
    """Return the workflows of a project (default: the store's), most recently updated first."""
    project = project_id or store.project_id
    workflows = t.workflows
    query = select(workflows).where(workflows.c.project_id == project)
    if not include_archived:
        query = query.where(workflows.c.archived.is_(False))
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(workflows.c.updated_at.desc())).all()
        return [_summary(connection, dict(row._mapping)) for row in rows]


def _summary(connection: Connection, row: Mapping[str, Any]) -> WorkflowSummary:
    versions = t.workflow_versions
    latest = connection.execute(
        select(versions.c.number, versions.c.created_at, versions.c.content_hash)
        .where(and_(versions.c.workflow_id == row["id"], versions.c.kind == "published"))
        .order_by(versions.c.number.desc())
        .limit(1)
    ).first()
    draft = connection.execute(
        select(t.drafts.c.revision, t.drafts.c.document).where(t.drafts.c.workflow_id == row["id"])
    ).first()
    draft_hash = None if draft is None else _draft_hash(connection, row["id"], draft.revision, draft.document)
    if draft_hash is None:
        state: DraftState = "no draft"
    elif latest is None:
        state = "new"
    else:
        state = "published" if latest.content_hash == draft_hash else "modified"
    return WorkflowSummary(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        updated_at=row["updated_at"],
        archived=bool(row["archived"]),
        latest_version=None if latest is None else int(latest.number),
        latest_version_at=None if latest is None else float(latest.created_at),
        draft_state=state,
        draft_revision=None if draft is None else int(draft.revision),
    )


def _draft_hash(connection: Connection, workflow_id: str, revision: int, document: Any) -> str | None:
    recorded = connection.execute(
        select(draft_revisions.c.content_hash).where(
            and_(draft_revisions.c.workflow_id == workflow_id, draft_revisions.c.revision == revision)
        )
    ).scalar()
    if recorded is not None:
        return str(recorded)
    try:
        return content_hash(workflow_from_data(document, f"draft of workflow {workflow_id}"))
    except ValueError:
        logger.warning("The stored draft of workflow %s cannot be read", workflow_id)
        return None


def find_workflow(store: Store, text: str) -> str:
    """Return the id of the workflow whose id starts with ``text`` or whose name is ``text``."""
    workflows = t.workflows
    with store.engine.connect() as connection:
        by_name = connection.execute(select(workflows.c.id).where(workflows.c.name == text)).scalars().all()
        by_id: list[str] = []
        if re.fullmatch(r"[0-9a-f-]{4,36}", text):
            by_id = list(connection.execute(select(workflows.c.id).where(workflows.c.id.startswith(text))).scalars())
    matches = list(dict.fromkeys([*by_id, *by_name]))
    if not matches:
        raise NotFoundError(
            f"workflow '{text}' was not found; give a workflow name or id ('studio versions' lists ids)"
        )
    if len(matches) > 1:
        listed_ids = ", ".join(str(match) for match in matches[:MAX_LISTED_MATCHES])
        more = f" and {len(matches) - MAX_LISTED_MATCHES} more" if len(matches) > MAX_LISTED_MATCHES else ""
        raise StoreError(
            f"workflow '{text}' matches {len(matches)} workflows ({listed_ids}{more}); give the id or enough of it "
            "to be unique"
        )
    return str(matches[0])


def create_workflow(store: Store, name: str, project_id: str | None = None) -> Workflow:
    """Create an empty workflow with a fresh id and save it as a draft in the project."""
    workflow = Workflow(name=_checked_name(name))
    save_draft(store, workflow, reason="create", project_id=project_id)
    return workflow


def save_draft(
    store: Store,
    workflow: Workflow,
    *,
    reason: str = "save",
    project_id: str | None = None,
    source_version: int | None = None,
) -> DraftSaved:
    """Save ``workflow`` as its draft and record the content in the draft history.

    A workflow seen for the first time joins ``project_id`` (default: the store's project). Saving
    content equal to the current draft changes nothing.
    """
    digest = content_hash(workflow)
    document = workflow.model_dump(mode="json")
    now = time.time()
    with store.engine.begin() as connection:
        project = _ensure_workflow_row(store, connection, workflow, project_id, now)
        scope = {"workspace_id": store.workspace_id, "project_id": project}
        current = connection.execute(
            select(t.drafts.c.revision, t.drafts.c.document).where(t.drafts.c.workflow_id == workflow.id)
        ).first()
        if current is None:
            revision = 1
            connection.execute(
                insert(t.drafts).values(
                    id=new_id(), workflow_id=workflow.id, document=document, revision=1, updated_at=now, **scope
                )
            )
        else:
            previous = _draft_hash(connection, workflow.id, current.revision, current.document)
            if previous == digest:
                return DraftSaved(int(current.revision), digest, changed=False)
            _keep_unrecorded_draft(connection, workflow.id, int(current.revision), current.document, scope, now)
            revision = int(current.revision) + 1
            connection.execute(
                update(t.drafts)
                .where(t.drafts.c.workflow_id == workflow.id)
                .values(document=document, revision=revision, updated_at=now)
            )
        connection.execute(
            insert(draft_revisions).values(
                id=new_id(),
                workflow_id=workflow.id,
                revision=revision,
                content_hash=digest,
                document=document,
                reason=reason,
                source_version=source_version,
                saved_at=now,
                **scope,
            )
        )
    logger.info("Saved draft revision %d of workflow %s (%s)", revision, workflow.id, reason)
    return DraftSaved(revision, digest, changed=True)


def _ensure_workflow_row(
    store: Store, connection: Connection, workflow: Workflow, project_id: str | None, now: float
) -> str:
    existing = connection.execute(select(t.workflows.c.project_id).where(t.workflows.c.id == workflow.id)).scalar()
    if existing is not None:
        connection.execute(
            update(t.workflows).where(t.workflows.c.id == workflow.id).values(name=workflow.name, updated_at=now)
        )
        return str(existing)
    project = project_id or store.project_id
    known = connection.execute(
        select(t.projects.c.id).where(and_(t.projects.c.id == project, t.projects.c.workspace_id == store.workspace_id))
    ).scalar()
    if known is None:
        raise NotFoundError(f"project '{project}' was not found; choose one of the workspace's projects")
    connection.execute(
        insert(t.workflows).values(
            id=workflow.id,
            workspace_id=store.workspace_id,
            project_id=project,
            name=workflow.name,
            created_at=now,
            updated_at=now,
            archived=False,
        )
    )
    return project


def _keep_unrecorded_draft(
    connection: Connection, workflow_id: str, revision: int, document: Any, scope: Mapping[str, str], now: float
) -> None:
    recorded = connection.execute(
        select(draft_revisions.c.id).where(
            and_(draft_revisions.c.workflow_id == workflow_id, draft_revisions.c.revision == revision)
        )
    ).first()
    if recorded is not None:
        return
    try:
        digest = content_hash(workflow_from_data(document, f"draft of workflow {workflow_id}"))
    except ValueError:
        digest = "unreadable"
    connection.execute(
        insert(draft_revisions).values(
            id=new_id(),
            workflow_id=workflow_id,
            revision=revision,
            content_hash=digest,
            document=document,
            reason="kept",
            source_version=None,
            saved_at=now,
            **scope,
        )
    )


def get_draft(store: Store, workflow_id: str) -> Workflow:
    """Return the draft of a workflow; raise NotFoundError when it has none."""
    draft = store.get_draft(workflow_id)
    if draft is None:
        raise NotFoundError(f"workflow '{workflow_id}' has no draft; restore a version as the draft first")
    return draft


def list_draft_revisions(store: Store, workflow_id: str) -> list[DraftRevision]:
    """Return the saved draft contents of a workflow, newest first."""
    query = select(draft_revisions).where(draft_revisions.c.workflow_id == workflow_id)
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(draft_revisions.c.revision.desc())).all()
    fields = DraftRevision.__dataclass_fields__
    return [DraftRevision(**{name: row._mapping[name] for name in fields}) for row in rows]


def restore_draft_revision(store: Store, workflow_id: str, revision: int) -> Workflow:
    """Make an earlier draft revision the draft again (as a new revision); return its workflow."""
    revisions = list_draft_revisions(store, workflow_id)
    for item in revisions:
        if item.revision == revision:
            workflow = item.workflow
            save_draft(store, workflow, reason="restore-draft")
            logger.info("Restored draft revision %d of workflow %s", revision, workflow_id)
            return workflow
    known = ", ".join(str(item.revision) for item in reversed(revisions)) or "none"
    raise NotFoundError(f"workflow '{workflow_id}' has no draft revision {revision}; saved revisions: {known}")


def rename_workflow(store: Store, workflow_id: str, name: str) -> None:
    """Rename a workflow and its draft (as a new draft revision)."""
    clean = _checked_name(name)
    draft = store.get_draft(workflow_id)
    if draft is not None:
        save_draft(store, draft.model_copy(update={"name": clean}), reason="rename")
        return
    with store.engine.begin() as connection:
        result = connection.execute(
            update(t.workflows).where(t.workflows.c.id == workflow_id).values(name=clean, updated_at=time.time())
        )
    if result.rowcount != 1:
        raise NotFoundError(f"workflow '{workflow_id}' was not found")


def set_archived(store: Store, workflow_id: str, archived: bool = True) -> None:
    """Archive a workflow (hidden from the list, nothing deleted) or bring it back."""
    with store.engine.begin() as connection:
        result = connection.execute(
            update(t.workflows).where(t.workflows.c.id == workflow_id).values(archived=archived)
        )
    if result.rowcount != 1:
        raise NotFoundError(f"workflow '{workflow_id}' was not found")
    logger.info("%s workflow %s", "Archived" if archived else "Unarchived", workflow_id)


def _checked_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise StoreError(f"workflow name {name!r} is invalid; give 1 to 200 characters")
    return clean


# -- versions ------------------------------------------------------------------------------------


def publish_draft(store: Store, workflow_id: str, note: str, *, catalog: ToolCatalog | None = None) -> VersionRecord:
    """Publish the draft of a workflow with ``note``; see :func:`publish`."""
    return publish(store, get_draft(store, workflow_id), note, catalog=catalog)


def publish(store: Store, workflow: Workflow, note: str, *, catalog: ToolCatalog | None = None) -> VersionRecord:
    """Save ``workflow`` as the draft and publish it as a version with ``note``.

    Raises PublishBlockedError, naming the first problems, while validation finds errors. The draft
    is saved first either way, so a refused publish loses nothing. Content that is already published
    returns the existing version.
    """
    save_draft(store, workflow)
    findings = validate_workflow(workflow, catalog=catalog)
    errors = [finding for finding in findings if finding.severity == "error"]
    if errors:
        raise PublishBlockedError(_blocked_message(workflow, errors), findings)
    version = store.publish_workflow(workflow, note=note.strip(), validated_by=VALIDATION_REVISION)
    with store.engine.begin() as connection:
        connection.execute(update(t.workflows).where(t.workflows.c.id == workflow.id).values(updated_at=time.time()))
    return version


def _blocked_message(workflow: Workflow, errors: Sequence[Finding]) -> str:
    lines = [
        f"cannot publish workflow '{workflow.name}': validation found {len(errors)} "
        f"error{'s' if len(errors) != 1 else ''}; fix them and publish again. First problems:"
    ]
    for finding in errors[:MAX_LISTED_PROBLEMS]:
        where = f"step '{finding.step_id}'" if finding.step_id else "workflow"
        field = f" {finding.field_path}" if finding.field_path else ""
        lines.append(f"- {where}{field}: {finding.message}")
    if len(errors) > MAX_LISTED_PROBLEMS:
        lines.append(f"- and {len(errors) - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)


def get_version_by_number(store: Store, workflow_id: str, number: int) -> VersionRecord:
    """Return published version ``number`` of a workflow; raise NotFoundError naming the numbers that exist."""
    versions = store.list_versions(workflow_id)
    for version in versions:
        if version.number == number:
            return version
    known = ", ".join(str(version.number) for version in versions) or "none"
    raise NotFoundError(f"workflow '{workflow_id}' has no version {number}; published versions: {known}")


def restore_version(store: Store, workflow_id: str, number: int) -> Workflow:
    """Make published version ``number`` the draft; the replaced draft stays in the draft history."""
    version = get_version_by_number(store, workflow_id, number)
    workflow = version.workflow
    save_draft(store, workflow, reason="restore", source_version=number)
    logger.info("Restored version %d of workflow %s as the draft", number, workflow_id)
    return workflow


# -- run-setup defaults --------------------------------------------------------------------------


def get_run_defaults(store: Store, workflow_id: str) -> dict[str, JsonValue]:
    """Return the run inputs saved for a workflow (empty when none were saved)."""
    with store.engine.connect() as connection:
        values = connection.execute(
            select(run_setup_defaults.c["values"]).where(run_setup_defaults.c.workflow_id == workflow_id)
        ).scalar()
    return dict(values) if isinstance(values, dict) else {}


def save_run_defaults(store: Store, workflow: Workflow, values: Mapping[str, JsonValue]) -> None:
    """Save ``values`` as the run-setup defaults of ``workflow``, creating its workflow record if needed."""
    now = time.time()
    with store.engine.begin() as connection:
        project = _ensure_workflow_row(store, connection, workflow, None, now)
        row = {"workspace_id": store.workspace_id, "project_id": project, "values": dict(values), "updated_at": now}
        exists = connection.execute(
            select(func.count()).where(run_setup_defaults.c.workflow_id == workflow.id)
        ).scalar_one()
        if exists:
            connection.execute(
                update(run_setup_defaults).where(run_setup_defaults.c.workflow_id == workflow.id).values(**row)
            )
        else:
            connection.execute(insert(run_setup_defaults).values(workflow_id=workflow.id, **row))


# -- shared graphs -------------------------------------------------------------------------------


def local_instances(store: Store) -> list[LocalInstance]:
    """Return the workspace's MCP instances with the ``server_url`` that names each in shared graphs."""
    instances = t.mcp_instances
    query = select(
        instances.c.id,
        instances.c.name,
        instances.c.server_url,
        instances.c.url,
        instances.c.command,
        instances.c.args,
    ).where(instances.c.workspace_id == store.workspace_id)
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(instances.c.name)).all()
        bound = _instance_connections(connection)
    return [
        LocalInstance(row.id, row.name, server_url_of_instance(dict(row._mapping)), tuple(bound.get(row.id, ())))
        for row in rows
    ]


def _instance_connections(connection: Connection) -> dict[str, list[str]]:
    # NOTE: the bindings table comes with the MCP instance rework, which some databases may lack.
    # Without the table, no instance is known to need a credential.
    if not inspect(connection).has_table("mcp_instance_bindings"):
        return {}
    rows = connection.execute(
        text("SELECT instance_id, connection_id FROM mcp_instance_bindings WHERE connection_id IS NOT NULL")
    ).all()
    bound: dict[str, list[str]] = {}
    for instance_id, connection_id in rows:
        if connection_id not in bound.setdefault(instance_id, []):
            bound[instance_id].append(connection_id)
    return bound


def local_connections(store: Store) -> list[LocalConnection]:
    """Return the workspace's connections without their secret references."""
    return [
        LocalConnection(str(row["id"]), str(row["name"]), str(row["kind"]), row.get("provider"))
        for row in store.list_connections()
    ]


def export_workflow(store: Store, workflow: Workflow) -> SharedGraph:
    """Build the shared graph of ``workflow`` with the store's instances and connections."""
    instances = {instance.id: instance for instance in local_instances(store)}
    connections = {connection.id: connection for connection in local_connections(store)}
    return export_shared_graph(workflow, instances, connections)


def match_local(store: Store, graph: SharedGraph) -> ImportMapping:
    """Propose the store's instances and connections for ``graph`` where exactly one fits each need."""
    return match_requirements(graph, local_instances(store), local_connections(store))


def import_graph(
    store: Store, graph: SharedGraph, mapping: ImportMapping, *, project_id: str | None = None
) -> Workflow:
    """Create a new workflow from ``graph`` with ``mapping`` and save it as a draft; return it."""
    workflow = instantiate(
        graph,
        mapping,
        instance_ids=[instance.id for instance in local_instances(store)],
        connection_ids=[connection.id for connection in local_connections(store)],
    )
    save_draft(store, workflow, reason="import", project_id=project_id)
    return workflow
