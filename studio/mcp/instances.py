"""MCP instances of a project: a catalog entry plus config profiles, connection bindings, timeouts and switches."""

from __future__ import annotations

import logging
import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import RowMapping, and_, delete, insert, select, update
from sqlalchemy.engine import Connection as DbConnection

from studio.mcp.catalog import CatalogEntry, check_entry_fields, get_entry, plain_secret
from studio.mcp.errors import McpConfigError, McpNotFoundError
from studio.mcp.secret_values import is_secret_env, is_secret_header
from studio.store import Store, new_id
from studio.store import tables as t
from studio.store.mcp_tables import mcp_instance_bindings, mcp_instance_profiles

logger = logging.getLogger(__name__)

DEFAULT_PROFILE = "default"
BindingTarget = Literal["env", "header"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")


@dataclass(frozen=True)
class Profile:
    """A named set of plain env variables, extra arguments (appended to the entry's) and HTTP headers."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    """A connection whose secret supplies an environment variable ('env') or HTTP header ('header').

    `connection_id` None marks a variable that still needs a connection.
    """

    target: BindingTarget
    name: str
    connection_id: str | None


@dataclass(frozen=True)
class Timeouts:
    """Time limits in seconds: the handshake, and one tool call (None: no limit)."""

    connect_s: float = 30.0
    call_s: float | None = None
    progress_extends: bool = True
    """Whether a progress notification from the server restarts the call's time limit."""
    max_call_s: float | None = None
    """Hard limit on one call whose time limit progress keeps restarting (the spec's ``max_call_timeout_s``).

    None means one hour, or the call timeout when that is longer."""


@dataclass(frozen=True)
class McpInstance:
    """One configured MCP server of a project. Contains no secret: bindings name connections."""

    id: str
    name: str
    catalog_entry_id: str | None
    transport: str
    command: str | None
    args: tuple[str, ...]
    cwd: str | None
    url: str | None
    profiles: Mapping[str, Profile]
    default_profile: str | None
    bindings: tuple[Binding, ...]
    timeouts: Timeouts
    allow_sampling: bool
    created_at: float

    @property
    def server_url(self) -> str:
        """The ``server_url`` form of the launch fields: ``stdio:<command line>`` or the HTTP URL."""
        if self.transport == "stdio":
            return "stdio:" + shlex.join([self.command or "", *self.args])
        return self.url or ""

    def profile(self, name: str | None = None) -> Profile:
        """Return the named profile, else the default one; an instance with no profiles has an empty one.

        Raises:
            McpConfigError: the named profile does not exist.
        """
        chosen = name or self.default_profile or DEFAULT_PROFILE
        if chosen in self.profiles:
            return self.profiles[chosen]
        if name is None and not self.profiles:
            return Profile(DEFAULT_PROFILE)
        available = ", ".join(sorted(self.profiles)) or "none"
        raise McpConfigError(f"MCP instance {self.name!r} has no profile {chosen!r}; available profiles: {available}")


# -- validation -----------------------------------------------------------------------------------


def check_profile(profile: Profile, instance_name: str) -> None:
    """Raise McpConfigError for an invalid profile name, env name, or an env value that looks like a secret."""
    if not _PROFILE_NAME.match(profile.name):
        raise McpConfigError(
            f"invalid profile name {profile.name!r}; use 1 to 100 letters, digits, spaces, '_', '.' or '-'"
        )
    for name, value in profile.env.items():
        if not _ENV_NAME.match(name):
            raise McpConfigError(
                f"invalid environment variable name {name!r} in profile {profile.name!r}; "
                "use letters, digits and '_', not starting with a digit"
            )
        if not isinstance(value, str):
            raise McpConfigError(f"environment variable {name!r} in profile {profile.name!r} must be a string")
        if is_secret_env(name, value):
            raise McpConfigError(
                f"environment variable {name!r} of MCP instance {instance_name!r} looks like a secret, and "
                "profiles are stored in plain text; bind a connection to it instead"
            )
    if not all(isinstance(arg, str) for arg in profile.args):
        raise McpConfigError(f"the arguments of profile {profile.name!r} must all be strings")
    problem = plain_secret("stdio", "", profile.args, None)
    if problem is not None:
        raise McpConfigError(
            f"profile {profile.name!r} of MCP instance {instance_name!r}: {problem} bound to a connection"
        )
    for name, value in profile.headers.items():
        if not _HEADER_NAME.match(name) or not isinstance(value, str) or "\n" in value or "\r" in value:
            raise McpConfigError(
                f"invalid HTTP header {name!r} in profile {profile.name!r}; use a token name and a one-line text value"
            )
        if is_secret_header(name, value):
            raise McpConfigError(
                f"header {name!r} of MCP instance {instance_name!r} looks like a credential, and profiles are "
                "stored in plain text; bind a connection to it instead"
            )


def check_binding(binding: Binding) -> None:
    """Raise McpConfigError for an unknown target or an invalid variable or header name."""
    if binding.target == "env":
        if not _ENV_NAME.match(binding.name):
            raise McpConfigError(
                f"invalid environment variable name {binding.name!r}; use letters, digits and '_', "
                "not starting with a digit"
            )
    elif binding.target == "header":
        if not _HEADER_NAME.match(binding.name):
            raise McpConfigError(f"invalid HTTP header name {binding.name!r}; use a token such as Authorization")
    else:
        raise McpConfigError(f"invalid binding target {binding.target!r}; use 'env' or 'header'")


def check_timeouts(timeouts: Timeouts) -> None:
    """Raise McpConfigError for a time limit that is not a positive number of seconds."""
    if not timeouts.connect_s > 0:
        raise McpConfigError(f"connect timeout {timeouts.connect_s!r} s is invalid; give a positive number")
    if timeouts.call_s is not None and not timeouts.call_s > 0:
        raise McpConfigError(f"call timeout {timeouts.call_s!r} s is invalid; give a positive number or none")
    if timeouts.max_call_s is None:
        return
    if not timeouts.max_call_s > 0:
        raise McpConfigError(f"maximum call time {timeouts.max_call_s!r} s is invalid; give a positive number or none")
    if timeouts.call_s is not None and timeouts.max_call_s < timeouts.call_s:
        raise McpConfigError(
            f"maximum call time {timeouts.max_call_s:g} s is shorter than the call timeout {timeouts.call_s:g} s; "
            "raise the maximum or lower the call timeout"
        )


def _max_call_values(timeouts: Timeouts) -> dict[str, float | None]:
    return {"max_call_timeout_s": timeouts.max_call_s}


# -- reading --------------------------------------------------------------------------------------


def _instance_from_rows(row: Mapping[str, Any], profiles: Iterable[Any], bindings: Iterable[Any]) -> McpInstance:
    return McpInstance(
        id=str(row["id"]),
        name=str(row["name"]),
        catalog_entry_id=row.get("catalog_entry_id"),
        transport=str(row["transport"]),
        command=row.get("command"),
        args=tuple(str(arg) for arg in row.get("args") or []),
        cwd=row.get("cwd"),
        url=row.get("url"),
        profiles={
            str(p["name"]): Profile(
                str(p["name"]), dict(p["env"] or {}), tuple(p["args"] or []), dict(p["headers"] or {})
            )
            for p in profiles
        },
        default_profile=row.get("default_profile"),
        bindings=tuple(Binding(b["target"], str(b["name"]), b["connection_id"]) for b in bindings),
        timeouts=Timeouts(
            connect_s=float(row.get("connect_timeout_s") or 30.0),
            call_s=None if row.get("call_timeout_s") is None else float(row["call_timeout_s"]),
            progress_extends=bool(row.get("progress_extends_timeout", True)),
            max_call_s=None if row.get("max_call_timeout_s") is None else float(row["max_call_timeout_s"]),
        ),
        allow_sampling=bool(row.get("allow_sampling", False)),
        created_at=float(row.get("created_at") or 0.0),
    )


def _load(connection: DbConnection, row: RowMapping) -> McpInstance:
    profiles = (
        connection.execute(
            select(mcp_instance_profiles)
            .where(mcp_instance_profiles.c.instance_id == row["id"])
            .order_by(mcp_instance_profiles.c.name)
        )
        .mappings()
        .all()
    )
    bindings = (
        connection.execute(
            select(mcp_instance_bindings)
            .where(mcp_instance_bindings.c.instance_id == row["id"])
            .order_by(mcp_instance_bindings.c.target, mcp_instance_bindings.c.name)
        )
        .mappings()
        .all()
    )
    return _instance_from_rows(dict(row), profiles, bindings)


def list_instances(store: Store) -> list[McpInstance]:
    """Return the instances of the store's project, ordered by name."""
    query = select(t.mcp_instances).where(t.mcp_instances.c.project_id == store.project_id)
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(t.mcp_instances.c.name)).mappings().all()
        return [_load(connection, row) for row in rows]


def get_instance(store: Store, id_or_name: str) -> McpInstance:
    """Return the instance with this id, else the one of the project with this name.

    Raises:
        McpNotFoundError: none matches.
    """
    by_id = select(t.mcp_instances).where(t.mcp_instances.c.id == id_or_name)
    by_name = select(t.mcp_instances).where(
        and_(t.mcp_instances.c.name == id_or_name, t.mcp_instances.c.project_id == store.project_id)
    )
    with store.engine.connect() as connection:
        row = connection.execute(by_id).mappings().first() or connection.execute(by_name).mappings().first()
        if row is not None:
            return _load(connection, row)
    raise McpNotFoundError(f"MCP instance {id_or_name!r} was not found; list the instances with 'studio mcp instances'")


# -- writing --------------------------------------------------------------------------------------


def create_instance(
    store: Store,
    entry: CatalogEntry | str,
    *,
    name: str | None = None,
    profiles: Sequence[Profile] = (),
    default_profile: str | None = None,
    bindings: Sequence[Binding] = (),
    timeouts: Timeouts | None = None,
    allow_sampling: bool = False,
    cwd: str | None = None,
) -> McpInstance:
    """Create an instance of a catalog entry (an entry or its id or name).

    Without profiles the instance gets an empty profile named 'default'. `cwd` overrides the entry's
    working directory.

    Raises:
        McpNotFoundError: the entry does not exist.
        McpConfigError: an invalid field, a duplicate name, or a profile env value that looks like a secret.
    """
    catalog_entry = entry if isinstance(entry, CatalogEntry) else get_entry(store, entry)
    instance_name = name or catalog_entry.name
    working_dir = cwd if cwd is not None else catalog_entry.cwd
    check_entry_fields(
        instance_name,
        catalog_entry.transport,
        catalog_entry.command,
        catalog_entry.args,
        working_dir,
        catalog_entry.url,
    )
    chosen_profiles = list(profiles) or [Profile(DEFAULT_PROFILE)]
    _check_all(instance_name, chosen_profiles, bindings, timeouts or Timeouts())
    chosen_default = default_profile or chosen_profiles[0].name
    if chosen_default not in {profile.name for profile in chosen_profiles}:
        raise McpConfigError(f"default profile {chosen_default!r} is not one of the instance's profiles")
    limits = timeouts or Timeouts()
    instance_id = new_id()
    now = time.time()
    # The name check runs in the write transaction (BEGIN IMMEDIATE), so two processes cannot both pass it.
    with store.engine.begin() as connection:
        same_name = connection.execute(
            select(t.mcp_instances.c.id).where(
                and_(t.mcp_instances.c.project_id == store.project_id, t.mcp_instances.c.name == instance_name)
            )
        ).first()
        if same_name is not None:
            raise McpConfigError(f"an MCP instance named {instance_name!r} exists already; choose another name")
        connection.execute(
            insert(t.mcp_instances).values(
                id=instance_id,
                workspace_id=store.workspace_id,
                project_id=store.project_id,
                name=instance_name,
                transport=catalog_entry.transport,
                command=catalog_entry.command,
                args=list(catalog_entry.args),
                env={},
                cwd=working_dir,
                url=catalog_entry.url,
                server_url=None,
                created_at=now,
                catalog_entry_id=catalog_entry.id,
                default_profile=chosen_default,
                connect_timeout_s=limits.connect_s,
                call_timeout_s=limits.call_s,
                progress_extends_timeout=limits.progress_extends,
                allow_sampling=allow_sampling,
                updated_at=now,
                **_max_call_values(limits),
            )
        )
        for profile in chosen_profiles:
            _write_profile(connection, instance_id, profile)
        for binding in bindings:
            _write_binding(connection, instance_id, binding)
    logger.info("Created MCP instance %s (%s) of catalog entry %s", instance_id, instance_name, catalog_entry.id)
    return get_instance(store, instance_id)


def _check_all(name: str, profiles: Sequence[Profile], bindings: Sequence[Binding], timeouts: Timeouts) -> None:
    names = [profile.name for profile in profiles]
    if len(set(names)) != len(names):
        raise McpConfigError(f"MCP instance {name!r} has two profiles with one name; rename one")
    for profile in profiles:
        check_profile(profile, name)
    keys = [(binding.target, binding.name) for binding in bindings]
    if len(set(keys)) != len(keys):
        raise McpConfigError(f"MCP instance {name!r} binds one variable or header twice; keep one binding")
    for binding in bindings:
        check_binding(binding)
    check_timeouts(timeouts)


def _write_profile(connection: DbConnection, instance_id: str, profile: Profile) -> None:
    connection.execute(
        delete(mcp_instance_profiles).where(
            and_(mcp_instance_profiles.c.instance_id == instance_id, mcp_instance_profiles.c.name == profile.name)
        )
    )
    connection.execute(
        insert(mcp_instance_profiles).values(
            instance_id=instance_id,
            name=profile.name,
            env=dict(profile.env),
            args=list(profile.args),
            headers=dict(profile.headers),
        )
    )


def _write_binding(connection: DbConnection, instance_id: str, binding: Binding) -> None:
    connection.execute(
        delete(mcp_instance_bindings).where(
            and_(
                mcp_instance_bindings.c.instance_id == instance_id,
                mcp_instance_bindings.c.target == binding.target,
                mcp_instance_bindings.c.name == binding.name,
            )
        )
    )
    connection.execute(
        insert(mcp_instance_bindings).values(
            instance_id=instance_id, target=binding.target, name=binding.name, connection_id=binding.connection_id
        )
    )


def _touch(connection: DbConnection, instance_id: str, **values: Any) -> None:
    connection.execute(
        update(t.mcp_instances).where(t.mcp_instances.c.id == instance_id).values(updated_at=time.time(), **values)
    )


def set_profile(store: Store, instance: str, profile: Profile, *, make_default: bool = False) -> McpInstance:
    """Add or replace a profile of an instance (by id or name)."""
    current = get_instance(store, instance)
    check_profile(profile, current.name)
    with store.engine.begin() as connection:
        _write_profile(connection, current.id, profile)
        if make_default:
            _touch(connection, current.id, default_profile=profile.name)
        else:
            _touch(connection, current.id)
    return get_instance(store, current.id)


def remove_profile(store: Store, instance: str, profile_name: str) -> McpInstance:
    """Remove a profile; the default profile cannot be removed until another one is the default."""
    current = get_instance(store, instance)
    current.profile(profile_name)
    if profile_name == current.default_profile:
        raise McpConfigError(
            f"profile {profile_name!r} is the default of MCP instance {current.name!r}; make another profile "
            "the default first"
        )
    with store.engine.begin() as connection:
        connection.execute(
            delete(mcp_instance_profiles).where(
                and_(mcp_instance_profiles.c.instance_id == current.id, mcp_instance_profiles.c.name == profile_name)
            )
        )
        _touch(connection, current.id)
    return get_instance(store, current.id)


def set_default_profile(store: Store, instance: str, profile_name: str) -> McpInstance:
    current = get_instance(store, instance)
    current.profile(profile_name)
    with store.engine.begin() as connection:
        _touch(connection, current.id, default_profile=profile_name)
    return get_instance(store, current.id)


def bind(store: Store, instance: str, target: BindingTarget, name: str, connection_id: str | None) -> McpInstance:
    """Bind (or with None, unbind but keep as needed) a connection to an env variable or header.

    Raises:
        McpConfigError: an invalid target or name, or a connection id that does not exist.
    """
    current = get_instance(store, instance)
    binding = Binding(target, name, connection_id)
    check_binding(binding)
    if connection_id is not None and store.get_connection(connection_id) is None:
        raise McpConfigError(
            f"connection {connection_id!r} was not found; list the connections with 'studio connections list'"
        )
    with store.engine.begin() as connection:
        _write_binding(connection, current.id, binding)
        _touch(connection, current.id)
    logger.info("Bound %s %s of MCP instance %s to connection %s", target, name, current.id, connection_id)
    return get_instance(store, current.id)


def remove_binding(store: Store, instance: str, target: BindingTarget, name: str) -> McpInstance:
    current = get_instance(store, instance)
    with store.engine.begin() as connection:
        connection.execute(
            delete(mcp_instance_bindings).where(
                and_(
                    mcp_instance_bindings.c.instance_id == current.id,
                    mcp_instance_bindings.c.target == target,
                    mcp_instance_bindings.c.name == name,
                )
            )
        )
        _touch(connection, current.id)
    return get_instance(store, current.id)


def set_options(
    store: Store, instance: str, *, timeouts: Timeouts | None = None, allow_sampling: bool | None = None
) -> McpInstance:
    """Change an instance's time limits and its allow-sampling switch; None leaves a value as it is."""
    current = get_instance(store, instance)
    values: dict[str, Any] = {}
    if timeouts is not None:
        check_timeouts(timeouts)
        values.update(
            connect_timeout_s=timeouts.connect_s,
            call_timeout_s=timeouts.call_s,
            progress_extends_timeout=timeouts.progress_extends,
            **_max_call_values(timeouts),
        )
    if allow_sampling is not None:
        values["allow_sampling"] = allow_sampling
    with store.engine.begin() as connection:
        _touch(connection, current.id, **values)
    return get_instance(store, current.id)


def find_instance_uses(store: Store, instance_id: str) -> list[str]:
    """Describe the drafts and versions whose steps (nested ones too) set ``config.instance_id`` to this id."""
    uses: list[str] = []
    for document in store.workflow_documents():
        step_ids = sorted(set(_steps_using_instance(document["document"], instance_id)))
        if step_ids:
            version = "draft" if document["version"] is None else f"version {document['version']}"
            uses.append(f"workflow '{document['workflow_name']}' ({version}, steps {', '.join(step_ids)})")
    return uses


def _steps_using_instance(value: Any, instance_id: str) -> Iterable[str]:
    if isinstance(value, Mapping):
        config = value.get("config")
        if "type" in value and isinstance(config, Mapping) and config.get("instance_id") == instance_id:
            yield str(value.get("id"))
        for item in value.values():
            yield from _steps_using_instance(item, instance_id)
    elif isinstance(value, list):
        for item in value:
            yield from _steps_using_instance(item, instance_id)


def delete_instance(store: Store, instance: str, *, force: bool = False) -> None:
    """Delete an instance with its profiles, bindings and cached tool list (not the bound connections).

    Raises:
        McpConfigError: workflow drafts or versions use the instance and ``force`` is false; nothing
            is deleted. Steps of a forced delete fail with "instance not found" until they are changed.
    """
    current = get_instance(store, instance)
    uses = find_instance_uses(store, current.id)
    if uses and not force:
        raise McpConfigError(
            f"MCP instance {current.name!r} is used by {'; '.join(uses)}; point those steps at another "
            "instance first, or delete it with force"
        )
    with store.engine.begin() as connection:
        connection.execute(delete(t.mcp_instances).where(t.mcp_instances.c.id == current.id))
    logger.info("Deleted MCP instance %s (%s)", current.id, current.name)
