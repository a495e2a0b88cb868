"""Shared-graph files: a workflow exported without local ids, secrets or run data, and its import.

A shared graph names each MCP server by its ``server_url`` and each credential by a named slot
(``{"slot": "github", "kind": "bearer"}``). Import lists what the file needs, matches it to local
MCP instances and connections where the match is unambiguous, and builds a new draft workflow with
a fresh id from a complete mapping.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.model.document import DocumentError, format_location, workflow_from_data, workflow_to_data
from studio.model.workflow import AnyStep, Edge, ForEachStep, LlmCallStep, McpCallStep, Workflow

logger = logging.getLogger(__name__)

SHARED_GRAPH_FORMAT = "workflow-studio/shared-graph"
SHARED_GRAPH_SCHEMA_VERSION = 1
SUPPORTED_SHARED_GRAPH_VERSIONS = frozenset({1})
CREDENTIAL_KINDS = ("api_key", "bearer", "basic", "none")
SLOT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_SECRET_NAME = re.compile(
    r"(^|[_-])(api[_-]?key|key|token|secret|password|passwd|pass|pat|auth|credentials?|access[_-]?token)$", re.I
)
"""Argument flags and URL query parameters whose value is a credential (``--api-key``, ``?token=``)."""
_CREDENTIAL_VALUE = re.compile(r"^(sk-|sk_|ghp_|gho_|ghs_|github_pat_|glpat-|xox[abpr]-|AKIA[0-9A-Z]{12}|eyJ)")
"""Prefixes of well-known credential formats: OpenAI and Anthropic keys, GitHub, GitLab and Slack
tokens, AWS access key ids, and JSON Web Tokens."""
_CREDENTIAL_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_-]{16,}|sk_(live|test)_[A-Za-z0-9]{16,}|gh[pous]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.)"
)
"""Tokens of the same formats inside longer text, long enough that prose mentioning a prefix does not match."""


class SharedGraphError(ValueError):
    """A shared graph that cannot be exported, read or imported; ``problems`` lists ``(path, message)``."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CredentialSlot(_Strict):
    """A credential the graph needs, by name; the importer binds it to a local connection."""

    slot: str = Field(pattern=SLOT_PATTERN)
    kind: Literal["api_key", "bearer", "basic", "none"]
    provider: str | None = None
    steps: list[str] = Field(default_factory=list)
    """Ids of the llm_call steps that use this credential."""
    server_url: str | None = None
    """Set when the MCP server with this URL needs the credential rather than a step. The local
    instance chosen for that server brings its own credential, so import does not ask for it."""


class ServerRequirement(_Strict):
    """An MCP server the graph calls; the importer binds it to a local MCP instance."""

    server_url: str = Field(min_length=1)
    name: str = ""
    """Name of the instance on the exporting machine, as a hint for the person importing."""
    tools: list[str] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)


class SharedGraph(_Strict):
    """The shared-graph file. ``workflow`` is a workflow document without ``id``, instance or connection ids."""

    format: Literal["workflow-studio/shared-graph"] = "workflow-studio/shared-graph"
    schema_version: int = SHARED_GRAPH_SCHEMA_VERSION
    workflow: dict[str, Any]
    servers: list[ServerRequirement] = Field(default_factory=list)
    credentials: list[CredentialSlot] = Field(default_factory=list)

    def to_json(self) -> str:
        """Serialise as indented JSON ending with a newline."""
        # The workflow is already JSON data. Dumping it through pydantic would hit pydantic's
        # serialization depth limit (between 80 and 100 nested for_each steps with pydantic 2.14).
        data = self.model_dump(mode="json", exclude={"workflow"})
        ordered = {
            "format": data.pop("format"),
            "schema_version": data.pop("schema_version"),
            "workflow": self.workflow,
        }
        return json.dumps({**ordered, **data}, indent=2, ensure_ascii=False) + "\n"

    def build_workflow(self) -> Workflow:
        """Return the embedded workflow with a fresh id; raise SharedGraphError with paths on problems."""
        data = {key: value for key, value in self.workflow.items() if key != "id"}
        try:
            return workflow_from_data(data, "shared graph")
        except DocumentError as error:
            problems = [(f"workflow.{path}" if path else "workflow", message) for path, message in error.problems]
            raise SharedGraphError("shared graph", problems) from None


@dataclass(frozen=True)
class LocalInstance:
    """A local MCP instance as export and import see it."""

    id: str
    name: str
    server_url: str | None
    connection_ids: tuple[str, ...] = ()
    """Connections whose secrets the instance uses (in environment variables or headers)."""


@dataclass(frozen=True)
class LocalConnection:
    """A local connection as export and import see it: no secret, no secret reference."""

    id: str
    name: str
    kind: str
    provider: str | None = None


@dataclass
class ImportMapping:
    """Local ids chosen for each server and slot of a graph; None leaves that one unbound.

    An unbound server keeps only its ``server_url``, which the engine starts or connects to itself.
    An unbound slot leaves the steps without a connection, so they read the provider's environment.
    """

    servers: dict[str, str | None] = field(default_factory=dict)
    slots: dict[str, str | None] = field(default_factory=dict)

    def missing(self, graph: SharedGraph) -> list[str]:
        """Return readable names of the graph's servers and slots that have no entry yet."""
        names = [f"server {server.server_url}" for server in graph.servers if server.server_url not in self.servers]
        names += [f"credential slot {slot.slot}" for slot in step_slots(graph) if slot.slot not in self.slots]
        return names


def step_slots(graph: SharedGraph) -> list[CredentialSlot]:
    """Return the slots that steps use, which import binds; server slots come with the chosen instance."""
    return [slot for slot in graph.credentials if slot.server_url is None]


def server_url_of_instance(row: Mapping[str, Any]) -> str | None:
    """Return the ``server_url`` that identifies an ``mcp_instances`` row in shared graphs.

    The stored ``server_url`` wins. Otherwise an HTTP instance is named by its ``url`` and a stdio
    instance by ``stdio:`` and its command line. Env values never take part, because they may hold secrets.
    """
    stored = row.get("server_url")
    if stored:
        return str(stored)
    url = row.get("url")
    if url:
        return str(url)
    command = row.get("command")
    if command:
        args = [str(arg) for arg in row.get("args") or []]
        return "stdio:" + shlex.join([str(command), *args])
    return None


# -- export ------------------------------------------------------------------------------------------


def secret_in_server_url(server_url: str) -> str | None:
    """Return where ``server_url`` carries a credential (for example ``argument 4``), or None.

    Looks at stdio arguments after a secret-named flag (``--token X``, ``--api-key=X``) or in a
    known credential format, and at a URL's password and secret-named query parameters. The
    returned text never contains the secret itself.
    """
    if server_url.startswith("stdio:"):
        return _secret_in_arguments(server_url.removeprefix("stdio:"))
    parts = urlsplit(server_url)
    if parts.password:
        return "the password of the URL"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and (_SECRET_NAME.search(name) or _CREDENTIAL_VALUE.match(value)):
            return f"query parameter '{name}'"
    return None


def _secret_in_arguments(command_line: str) -> str | None:
    try:
        words = shlex.split(command_line)
    except ValueError:
        words = command_line.split()
    for index, word in enumerate(words):
        flag, equals, value = word.partition("=")
        secret_flag = flag.startswith("-") and _SECRET_NAME.search(flag.lstrip("-")) is not None
        if equals and secret_flag and _is_secret_value(value):
            return f"argument {index} ({flag})"
        following = words[index + 1] if index + 1 < len(words) else ""
        if not equals and secret_flag and not following.startswith("-") and _is_secret_value(following):
            return f"argument {index + 1} (the value of {flag})"
        if _CREDENTIAL_VALUE.match(value if equals else word):
            return f"argument {index}"
    return None


def _credential_paths(value: Any, path: str) -> Iterable[str]:
    """Yield the paths of strings in ``value`` that contain a token in a known credential format."""
    if isinstance(value, str):
        if _CREDENTIAL_IN_TEXT.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _credential_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _credential_paths(item, f"{path}[{index}]")


def _is_secret_value(value: str) -> bool:
    """Return whether a flag's value may be a literal secret rather than a path or a placeholder."""
    return bool(value) and not value.startswith(("/", "./", "../", "~", "$"))


def slot_name(connection_name: str) -> str:
    """Return a slot name for a connection name: lower case, runs of other characters turned into '-'."""
    text = re.sub(r"[^a-z0-9_-]+", "-", connection_name.lower()).strip("-_")
    return (text or "credential")[:64]


def export_shared_graph(
    workflow: Workflow,
    instances: Mapping[str, LocalInstance],
    connections: Mapping[str, LocalConnection],
) -> SharedGraph:
    """Build the shared graph of ``workflow``.

    ``instances`` and ``connections`` map local ids to their records. Raises SharedGraphError naming
    each step whose MCP server or connection cannot be named without local ids.
    """
    exporter = _Exporter(instances, connections)
    steps = exporter.strip_steps(workflow.steps, "steps")
    if exporter.problems:
        raise SharedGraphError(f"workflow '{workflow.name}'", exporter.problems)
    stripped = workflow.model_copy(update={"steps": steps})
    document = workflow_to_data(stripped)
    document.pop("id", None)
    leaks = [
        (
            path,
            "contains a value in a known credential format; remove it, pass the secret through a connection, "
            "then export again",
        )
        for path in _credential_paths(document, "")
    ]
    if leaks:
        raise SharedGraphError(f"workflow '{workflow.name}'", leaks)
    graph = SharedGraph(
        workflow=document,
        servers=list(exporter.servers.values()),
        credentials=list(exporter.slots.values()),
    )
    logger.info(
        "Exported workflow %s as a shared graph with %d servers and %d credential slots",
        workflow.id,
        len(graph.servers),
        len(graph.credentials),
    )
    return graph


class _Exporter:
    def __init__(self, instances: Mapping[str, LocalInstance], connections: Mapping[str, LocalConnection]) -> None:
        self.instances = instances
        self.connections = connections
        self.servers: dict[str, ServerRequirement] = {}
        self.slots: dict[str, CredentialSlot] = {}
        self._slot_by_connection: dict[tuple[str, str | None], str] = {}
        self.problems: list[tuple[str, str]] = []

    def strip_steps(self, steps: list[AnyStep], path: str) -> list[AnyStep]:
        return [self._strip(step, f"{path}[{index}]") for index, step in enumerate(steps)]

    def _strip(self, step: AnyStep, path: str) -> AnyStep:
        if isinstance(step, McpCallStep):
            server_url = self._server_url(step, path)
            config = step.config.model_copy(update={"instance_id": None, "server_url": server_url})
            return step.model_copy(update={"config": config})
        if isinstance(step, LlmCallStep) and step.config.connection_id:
            self._use_connection(step, step.config.connection_id, path)
            return step.model_copy(update={"config": step.config.model_copy(update={"connection_id": None})})
        if isinstance(step, ForEachStep):
            body = self.strip_steps(step.config.steps, f"{path}.config.steps")
            return step.model_copy(update={"config": step.config.model_copy(update={"steps": body})})
        return step

    def _server_url(self, step: McpCallStep, path: str) -> str | None:
        instance_id = step.config.instance_id
        instance = self.instances.get(instance_id) if instance_id else None
        server_url = instance.server_url if instance is not None and instance.server_url else step.config.server_url
        if not server_url:
            if instance is None and instance_id:
                reason = f"uses MCP instance '{instance_id}', which was not found"
            elif instance is not None:
                reason = f"uses MCP instance '{instance.name}', which has no server URL"
            else:
                reason = "names no MCP server"
            self.problems.append(
                (f"{path}.config", f"step '{step.id}' {reason}; set a server_url on the step or the instance")
            )
            return None
        where = secret_in_server_url(server_url)
        if where is not None:
            owner = f"MCP instance '{instance.name}'" if instance is not None else "its step config"
            self.problems.append(
                (
                    f"{path}.config",
                    f"step '{step.id}' uses a server URL from {owner} that carries a secret in {where}; "
                    "pass the secret in an env variable or header bound to a connection ('studio mcp bind'), "
                    "then export again",
                )
            )
            return None
        requirement = self.servers.setdefault(
            server_url, ServerRequirement(server_url=server_url, name=instance.name if instance else "")
        )
        if not requirement.steps and instance is not None:
            for connection_id in instance.connection_ids:
                self._add_server_slot(server_url, connection_id)
        requirement.steps.append(step.id)
        if step.config.tool and step.config.tool not in requirement.tools:
            requirement.tools.append(step.config.tool)
        return server_url

    def _use_connection(self, step: LlmCallStep, connection_id: str, path: str) -> None:
        connection = self.connections.get(connection_id)
        if connection is None:
            self.problems.append(
                (
                    f"{path}.config.connection_id",
                    f"step '{step.id}' uses connection '{connection_id}', which was not found; "
                    "choose an existing connection or clear the field",
                )
            )
            return
        self.slots[self._slot_for(connection, None)].steps.append(step.id)

    def _add_server_slot(self, server_url: str, connection_id: str) -> None:
        connection = self.connections.get(connection_id)
        if connection is not None:
            self._slot_for(connection, server_url)
        else:
            # The instance's own binding is broken; the importer's instance brings its own credential anyway.
            logger.warning("MCP server %s uses connection %s, which was not found", server_url, connection_id)

    def _slot_for(self, connection: LocalConnection, server_url: str | None) -> str:
        key = (connection.id, server_url)
        slot = self._slot_by_connection.get(key)
        if slot is None:
            slot = self._free_slot_name(slot_name(connection.name))
            self._slot_by_connection[key] = slot
            kind = connection.kind if connection.kind in CREDENTIAL_KINDS else "api_key"
            self.slots[slot] = CredentialSlot.model_validate(
                {"slot": slot, "kind": kind, "provider": connection.provider, "server_url": server_url}
            )
        return slot

    def _free_slot_name(self, base: str) -> str:
        candidate, number = base, 2
        while candidate in self.slots:
            suffix = f"-{number}"
            candidate, number = base[: 64 - len(suffix)] + suffix, number + 1
        return candidate


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder, then rename it.

    A replaced file keeps its permission bits; a new one gets the usual ``0o666`` minus the umask,
    not the owner-only mode of the temporary file. Raises OSError.
    """
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    # NOTE: os.umask can only be read by setting it, so another thread creating a file at this
    # moment would use mode 0o022; the value is restored at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- import ------------------------------------------------------------------------------------------


def parse_shared_graph(text: str, source: str = "<shared graph>") -> SharedGraph:
    """Parse and validate shared-graph JSON; raise SharedGraphError listing problems with their paths."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SharedGraphError(
            source, [("", f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}")]
        ) from None
    except RecursionError:
        raise SharedGraphError(source, [("", "invalid JSON: objects or lists are nested too deeply")]) from None
    return shared_graph_from_data(data, source)


def load_shared_graph(path: str | Path) -> SharedGraph:
    """Read and validate a shared-graph file; raise SharedGraphError for unreadable or invalid files."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SharedGraphError(str(file_path), [("", "file not found; check the path")]) from None
    except UnicodeDecodeError as error:
        message = f"the file is not UTF-8 text (invalid byte at offset {error.start}); save it as UTF-8 JSON"
        raise SharedGraphError(str(file_path), [("", message)]) from None
    except OSError as error:
        raise SharedGraphError(str(file_path), [("", f"cannot read the file: {error.strerror}")]) from None
    return parse_shared_graph(text, str(file_path))


def shared_graph_from_data(data: Any, source: str = "<shared graph>") -> SharedGraph:
    """Validate decoded JSON as a shared graph, including the embedded workflow and its cross-references."""
    if not isinstance(data, dict):
        raise SharedGraphError(source, [("", f"expected a JSON object at the top level, found {type(data).__name__}")])
    if data.get("format") != SHARED_GRAPH_FORMAT:
        found = data.get("format")
        message = f"is {found!r}; a shared-graph file has format '{SHARED_GRAPH_FORMAT}'"
        if found is None and "steps" in data:
            message += ". This looks like a workflow file: open it with File > Open instead"
        raise SharedGraphError(source, [("format", message)])
    version = data.get("schema_version")
    if version not in SUPPORTED_SHARED_GRAPH_VERSIONS or isinstance(version, bool):
        supported = ", ".join(str(number) for number in sorted(SUPPORTED_SHARED_GRAPH_VERSIONS))
        raise SharedGraphError(
            source,
            [("schema_version", f"{version!r} is not supported; this release reads version {supported}")],
        )
    try:
        graph = SharedGraph.model_validate(data)
    except ValidationError as error:
        problems = [(format_location(tuple(item["loc"])), _message(item)) for item in error.errors()]
        raise SharedGraphError(source, problems) from None
    try:
        workflow = graph.build_workflow()
    except SharedGraphError as error:
        raise SharedGraphError(source, error.problems) from None
    problems = _cross_reference_problems(graph, workflow)
    if problems:
        raise SharedGraphError(source, problems)
    return graph


def _message(item: Mapping[str, Any]) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if item["type"] == "string_pattern_mismatch":
        return f"invalid slot name {item.get('input')!r}: use lower-case letters, digits, '-' or '_'"
    return str(item["msg"])


def _step_paths(steps: list[AnyStep], path: str) -> Iterable[tuple[str, AnyStep]]:
    for index, step in enumerate(steps):
        step_path = f"{path}[{index}]"
        yield step_path, step
        if isinstance(step, ForEachStep):
            yield from _step_paths(step.config.steps, f"{step_path}.config.steps")


def _structure_problems(graph: SharedGraph, workflow: Workflow) -> list[tuple[str, str]]:
    """List repeated step ids, edges to steps the file lacks, and servers listed twice.

    Import binds servers and slots by step id, so a repeated id would bind steps the file did not mean.
    """
    problems: list[tuple[str, str]] = []
    first_path: dict[str, str] = {}
    for path, step in _step_paths(workflow.steps, "workflow.steps"):
        if step.id in first_path:
            problems.append(
                (f"{path}.id", f"step id '{step.id}' is used by {first_path[step.id]} already; rename one of them")
            )
        first_path.setdefault(step.id, path)
    edge_lists: list[tuple[str, list[Edge]]] = [("workflow.edges", workflow.edges)]
    edge_lists += [
        (f"{path}.config.edges", step.config.edges)
        for path, step in _step_paths(workflow.steps, "workflow.steps")
        if isinstance(step, ForEachStep)
    ]
    for edges_path, edges in edge_lists:
        for index, edge in enumerate(edges):
            for end in ("source", "target"):
                step_id = getattr(edge, end)
                if step_id not in first_path:
                    problems.append(
                        (
                            f"{edges_path}[{index}].{end}",
                            f"step '{step_id}' does not exist; fix the id or remove the edge",
                        )
                    )
    seen_urls: set[str] = set()
    for index, server in enumerate(graph.servers):
        if server.server_url in seen_urls:
            problems.append((f"servers[{index}].server_url", f"server {server.server_url!r} is listed twice; keep one"))
        seen_urls.add(server.server_url)
    return problems


def _cross_reference_problems(graph: SharedGraph, workflow: Workflow) -> list[tuple[str, str]]:
    problems = _structure_problems(graph, workflow)
    server_urls = {server.server_url for server in graph.servers}
    steps = {step.id: step for step in workflow.iter_steps()}
    for path, step in _step_paths(workflow.steps, "workflow.steps"):
        if isinstance(step, McpCallStep):
            if step.config.instance_id:
                problems.append(
                    (f"{path}.config.instance_id", "a shared graph must not name a local MCP instance; remove it")
                )
            if not step.config.server_url:
                problems.append((f"{path}.config.server_url", f"step '{step.id}' needs a server_url; add one"))
            elif step.config.server_url not in server_urls:
                problems.append(
                    (
                        f"{path}.config.server_url",
                        f"server {step.config.server_url!r} is not listed in 'servers'; add it there",
                    )
                )
        if isinstance(step, LlmCallStep) and step.config.connection_id:
            problems.append(
                (f"{path}.config.connection_id", "a shared graph must not name a local connection; use a slot")
            )
    for index, server in enumerate(graph.servers):
        for step_index, step_id in enumerate(server.steps):
            listed = steps.get(step_id)
            if not isinstance(listed, McpCallStep) or listed.config.server_url != server.server_url:
                problems.append(
                    (
                        f"servers[{index}].steps[{step_index}]",
                        f"'{step_id}' is not an mcp_call step of this server; remove it or fix the id",
                    )
                )
    seen_slots: set[str] = set()
    slot_of_step: dict[str, str] = {}
    for index, slot in enumerate(graph.credentials):
        if slot.slot in seen_slots:
            problems.append((f"credentials[{index}].slot", f"slot '{slot.slot}' is listed twice; rename one"))
        seen_slots.add(slot.slot)
        if slot.server_url is not None and slot.server_url not in server_urls:
            problems.append(
                (f"credentials[{index}].server_url", f"server {slot.server_url!r} is not listed in 'servers'; add it")
            )
        if slot.server_url is not None and slot.steps:
            problems.append((f"credentials[{index}].steps", "a server's credential slot lists no steps; remove them"))
        for step_index, step_id in enumerate(slot.steps):
            if step_id in slot_of_step:
                problems.append(
                    (
                        f"credentials[{index}].steps[{step_index}]",
                        f"step '{step_id}' is listed in slot '{slot_of_step[step_id]}' already; keep one",
                    )
                )
            slot_of_step.setdefault(step_id, slot.slot)
            if not isinstance(steps.get(step_id), LlmCallStep):
                problems.append(
                    (
                        f"credentials[{index}].steps[{step_index}]",
                        f"'{step_id}' is not an llm_call step of the workflow; remove it or fix the id",
                    )
                )
    return problems


def match_requirements(
    graph: SharedGraph, instances: Sequence[LocalInstance], connections: Sequence[LocalConnection]
) -> ImportMapping:
    """Propose local ids where exactly one candidate fits; leave the others out of the mapping.

    A server matches the one local instance with the same ``server_url``. A slot matches the one
    connection of its kind with the slot's name, or else the one connection of its kind and provider.
    """
    mapping = ImportMapping()
    for server in graph.servers:
        candidates = [instance.id for instance in instances if instance.server_url == server.server_url]
        if len(candidates) == 1:
            mapping.servers[server.server_url] = candidates[0]
    for slot in step_slots(graph):
        chosen = _match_slot(slot, connections)
        if chosen is not None:
            mapping.slots[slot.slot] = chosen
    return mapping


def _match_slot(slot: CredentialSlot, connections: Sequence[LocalConnection]) -> str | None:
    # A connection without a provider (for example an MCP server's token) matches only by name: taken
    # as the only one of its kind, its secret would go to the slot's LLM provider.
    same_kind = [connection for connection in connections if connection.kind == slot.kind]
    named = [
        connection
        for connection in same_kind
        if slot_name(connection.name) == slot.slot and connection.provider in (None, slot.provider)
    ]
    if len(named) == 1:
        return named[0].id
    same_provider = [connection for connection in same_kind if connection.provider == slot.provider]
    if not named and slot.provider is not None and len(same_provider) == 1:
        return same_provider[0].id
    return None


def instantiate(
    graph: SharedGraph,
    mapping: ImportMapping,
    *,
    instance_ids: Iterable[str] | None = None,
    connection_ids: Iterable[str] | None = None,
) -> Workflow:
    """Build a new draft workflow (fresh id) from ``graph`` with the local ids of ``mapping``.

    Every server and slot needs an entry (None leaves it unbound). When ``instance_ids`` or
    ``connection_ids`` are given, mapped ids must be among them. Raises SharedGraphError otherwise.
    """
    problems = [
        ("", f"no choice for {name}; map it to a local id or leave it unbound") for name in mapping.missing(graph)
    ]
    problems += _unknown_ids("servers", mapping.servers, instance_ids, "MCP instance")
    problems += _unknown_ids("slots", mapping.slots, connection_ids, "connection")
    if problems:
        raise SharedGraphError("import", problems)
    slot_by_step = {step_id: slot.slot for slot in step_slots(graph) for step_id in slot.steps}
    workflow = graph.build_workflow()
    steps = [_bind(step, mapping, slot_by_step) for step in workflow.steps]
    result = workflow.model_copy(update={"steps": steps})
    logger.info("Imported a shared graph as workflow %s (%s)", result.id, result.name)
    return result


def _unknown_ids(
    label: str, chosen: Mapping[str, str | None], known: Iterable[str] | None, kind: str
) -> list[tuple[str, str]]:
    if known is None:
        return []
    known_ids = set(known)
    return [
        (f"{label}.{key}", f"{kind} '{value}' was not found; choose an existing {kind} or leave it unbound")
        for key, value in chosen.items()
        if value is not None and value not in known_ids
    ]


def _bind(step: AnyStep, mapping: ImportMapping, slot_by_step: Mapping[str, str]) -> AnyStep:
    if isinstance(step, McpCallStep) and step.config.server_url:
        instance_id = mapping.servers.get(step.config.server_url)
        return step.model_copy(update={"config": step.config.model_copy(update={"instance_id": instance_id})})
    if isinstance(step, LlmCallStep) and step.id in slot_by_step:
        connection_id = mapping.slots.get(slot_by_step[step.id])
        return step.model_copy(update={"config": step.config.model_copy(update={"connection_id": connection_id})})
    if isinstance(step, ForEachStep):
        body = [_bind(child, mapping, slot_by_step) for child in step.config.steps]
        return step.model_copy(update={"config": step.config.model_copy(update={"steps": body})})
    return step
