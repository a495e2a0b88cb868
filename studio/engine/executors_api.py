"""The executor contract: plain async functions that run one step attempt and hold no engine state.

A runner (this engine, or a distributed one later) renders a step's config, builds a
:class:`StepContext` and awaits :func:`execute_leaf_step`. Executors report progress, log lines,
token deltas and usage through the context and return the step's JSON result or raise.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import JsonValue

from studio.engine.errors import StepError
from studio.engine.events import EventType
from studio.engine.executors.llm import (
    ChatRequest,
    LlmEndpoint,
    chat_completion,
    endpoint_from_env_for,
    missing_endpoint_hint,
    parse_provider,
)
from studio.engine.executors.llm_default import (
    DEFAULT_MODEL_SETTING,
    ResolvedLlm,
    chosen_llm_name,
    resolve_step_llm,
)
from studio.engine.executors.llm_errors import (
    LlmConfigError,
    LlmError,
    LlmOutputError,
    LlmProtocolError,
    LlmTimeoutError,
)
from studio.engine.executors.llm_sampling import sample_with_default_llm
from studio.engine.executors.lua import LuaLimits
from studio.engine.executors.lua_errors import (
    LuaConversionError,
    LuaMemoryError,
    LuaScriptError,
    LuaTimeoutError,
)
from studio.engine.executors.lua_workers import LuaWorkers
from studio.engine.executors.mcp import (
    CallScope,
    ElicitationAnswer,
    ElicitationRequest,
    HttpAuthFactory,
    McpServerSpec,
    McpSessionPool,
    SamplingRequest,
    SamplingResponse,
)
from studio.engine.executors.mcp_errors import (
    McpAuthError,
    McpConnectError,
    McpError,
    McpServerCrashedError,
    McpTimeoutError,
    McpToolError,
)
from studio.mcp.errors import McpConfigError, McpNotFoundError
from studio.mcp.resolve import connection_auth_factory, spec_for_instance
from studio.model.validation_tools import compiled_validator
from studio.model.workflow import AnyStep
from studio.secrets import SecretsError, connection_credentials
from studio.store import Store

logger = logging.getLogger(__name__)

STUDIO_TOOLS_COMMAND = "studio-tools"
"""Command name in a ``stdio:`` server URL that means the MCP tool server shipped with the studio."""


class SamplingService(Protocol):
    """Serves one MCP sampling request with the project's default LLM; raises an exception saying what failed."""

    def __call__(self, services: ExecutorServices, request: SamplingRequest, /) -> Awaitable[SamplingResponse]: ...


@dataclass(frozen=True)
class StepContext:
    """Services and reporting callbacks for one attempt of one step."""

    run_id: str
    workflow_id: str
    step_key: str
    step_id: str
    attempt: int
    services: ExecutorServices
    emit: Callable[[EventType, dict[str, JsonValue]], None]
    record_usage: Callable[[str, float, str, dict[str, JsonValue]], None]
    ask_person: Callable[[ElicitationRequest], Awaitable[ElicitationAnswer]] | None = None
    """Create a pending elicitation task for this step and wait for a person's answer; None outside a run.

    NOTE: the wait stops the MCP call's own time limit but not the step's ``timeout_s``."""

    def log(self, message: str, level: str = "info") -> None:
        self.emit(EventType.STEP_LOG, {"level": level, "message": message})

    def progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.emit(EventType.STEP_PROGRESS, {"progress": progress, "total": total, "message": message})


class ExecutorServices:
    """Long-lived resources shared by executors: MCP sessions, the HTTP client, endpoint lookup.

    Sessions are shared across steps and runs of one engine; ``aclose()`` ends them. MCP servers
    that ask for the client's roots get ``project_root`` (default: the current directory), and
    their sampling requests go to ``sampling`` (default: ``sample_with_default_llm``, the project's
    default LLM connection). ``mcp_auth`` builds the HTTP auth of an MCP instance's connection
    (default: ``connection_auth_factory`` on ``store``, which reads the workspace's vault).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        project_root: Path | None = None,
        sampling: SamplingService | None = None,
        mcp_auth: HttpAuthFactory | None = None,
    ) -> None:
        self.store = store
        self.environ = dict(os.environ if environ is None else environ)
        self.project_root = (project_root or Path.cwd()).resolve()
        self.sampling: SamplingService = sampling or sample_with_default_llm
        if mcp_auth is None and store is not None:
            mcp_auth = connection_auth_factory(store)
        self.mcp = McpSessionPool(roots=[self.project_root], http_auth=mcp_auth)
        self._http: httpx.AsyncClient | None = None
        # Lua runs on the engine's own threads, not the loop's default executor: under qasync that
        # default is a pool of QThreads, and ending those after running Lua crashed the process
        # (PySide6 6.11.3, qasync 0.28, lupa 2.8).
        self.lua = LuaWorkers()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient()
        return self._http

    async def aclose(self) -> None:
        await self.mcp.close()
        self.lua.shutdown()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def mcp_server(self, config: Mapping[str, Any]) -> McpServerSpec:
        """Resolve an ``mcp_call`` config to a server: a stored instance first, then ``server_url``."""
        instance_id = config.get("instance_id")
        server_url = config.get("server_url")
        if instance_id and self.store is not None:
            try:
                return spec_for_instance(self.store, str(instance_id))
            except McpNotFoundError:
                if not server_url:
                    raise StepError(
                        "invalid_input",
                        f"MCP instance '{instance_id}' was not found; create it or set server_url on the step",
                    ) from None
            except (McpConfigError, SecretsError) as error:
                raise StepError("invalid_input", str(error)) from None
        if not server_url:
            raise StepError("invalid_input", "the mcp_call step names no server; set instance_id or server_url")
        return spec_from_server_url(str(server_url), self.environ)

    def llm_endpoint(self, config: Mapping[str, Any]) -> LlmEndpoint:
        """Resolve an ``llm_call`` config to an endpoint: a stored connection, else the environment.

        The step's ``provider`` ("openai", "anthropic" or "ollama") selects the wire protocol, and without a
        connection also the environment variables that are read (see ``endpoint_from_env_for``).

        This call blocks: it may unlock the encrypted-file vault (seconds), and it renews a due OAuth
        token with a blocking request to the token endpoint. From an event loop, call it through
        ``asyncio.to_thread``, as ``resolve_step_llm`` does.
        """
        try:
            provider = parse_provider(config.get("provider"))
        except LlmConfigError as error:
            raise StepError("invalid_input", f"{error.message}; fix the step's provider field") from None
        connection_id = config.get("connection_id")
        if connection_id and self.store is not None:
            connection = self.store.get_connection(str(connection_id))
            if connection is None:
                raise StepError(
                    "invalid_input", f"connection '{connection_id}' was not found; create it or clear connection_id"
                )
            if not connection.get("base_url"):
                raise StepError("invalid_input", f"connection '{connection['name']}' has no base URL; set one")
            connection_provider = connection.get("provider")
            if connection_provider in ("openai", "anthropic", "ollama") and connection_provider != provider:
                raise StepError(
                    "invalid_input",
                    f"connection '{connection['name']}' is for provider '{connection_provider}' but the step "
                    f"uses provider '{provider}'; set the step's provider to '{connection_provider}' "
                    "or choose another connection",
                )
            try:
                api_key, headers = connection_credentials(self.store, connection, self.environ)
            except SecretsError as error:
                raise StepError("invalid_input", str(error)) from None
            return LlmEndpoint(
                provider=provider, base_url=str(connection["base_url"]), api_key=api_key, extra_headers=headers
            )
        endpoint = endpoint_from_env_for(provider, self.environ)
        if endpoint is None:
            raise StepError(
                "invalid_input",
                f"no LLM endpoint is configured for provider '{provider}'; {missing_endpoint_hint(provider)}, "
                "or give the step a connection_id",
            )
        return endpoint


def spec_from_server_url(server_url: str, environ: Mapping[str, str]) -> McpServerSpec:
    """Parse a ``server_url``: ``http(s)://…`` for streamable HTTP, ``stdio:<command line>`` for a subprocess."""
    if server_url.startswith(("http://", "https://")):
        return McpServerSpec(transport="http", url=server_url)
    if server_url.startswith("stdio:"):
        try:
            words = shlex.split(server_url[len("stdio:") :])
        except ValueError as error:
            raise StepError(
                "invalid_input", f"server_url '{server_url}' is not a valid command line: {error}"
            ) from None
        if not words:
            raise StepError("invalid_input", "server_url 'stdio:' names no command; write stdio:<command> <args>")
        # The display name appears in error messages, so it is never the command line itself:
        # arguments may carry tokens.
        name = _server_name(words)
        if words[0] == STUDIO_TOOLS_COMMAND:
            words = [sys.executable, "-m", "studio.toolserver", *words[1:]]
        env = {key: value for key, value in environ.items() if _passed_to_server(key)}
        return McpServerSpec(transport="stdio", command=words[0], args=tuple(words[1:]), env=env, name=name)
    raise StepError(
        "invalid_input",
        f"server_url '{server_url}' is not supported; use http(s)://host/path or stdio:<command> <args>",
    )


_LAUNCHERS = ("python", "node", "npx", "uvx", "uv", "bun", "bunx", "deno", "pipx")


def _server_name(words: Sequence[str]) -> str:
    """Return the name of a server_url command for messages; '' to use the command's file name.

    For an interpreter or package runner such as ``python server.py`` or ``npx -y pkg`` it is the
    script, module or package, because every such server would otherwise be called "python" or "npx".
    """
    if words[0] == STUDIO_TOOLS_COMMAND:
        return STUDIO_TOOLS_COMMAND
    program = os.path.basename(words[0]).lower().removesuffix(".exe")
    if not program.startswith(_LAUNCHERS):
        return ""
    arguments = list(words[1:])
    if "-c" in arguments or "-e" in arguments:
        return ""
    if "-m" in arguments and arguments.index("-m") + 1 < len(arguments):
        return arguments[arguments.index("-m") + 1]
    for argument in arguments:
        if not argument.startswith("-") and argument not in ("run", "exec", "x"):
            return os.path.basename(argument)
    return ""


_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
_VAULT_ENV_PREFIX = "STUDIO_SECRETS_"


def _passed_to_server(name: str) -> bool:
    """Whether the studio's variable ``name`` goes to an stdio server started from a ``server_url``.

    The vault settings stay out: with the passphrase and the file's path, any server command
    written in a workflow file could decrypt every secret of the workspace.
    """
    if name.startswith(_VAULT_ENV_PREFIX):
        return False
    return name.startswith("STUDIO_") or name in _PASSED_ENV


PURE_STEP_TYPES = frozenset({"lua_script"})
"""Leaf step types whose executor has no effect outside the run.

A ``lua_script`` step runs in a sandbox without I/O, so its only output is its result. The engine
lets such a step run before its start (and its predecessors' completions) are durable, and runs it
again when a crash interrupted it, whatever its retry policy allows. Neither can be seen from
outside. A step with effects (``mcp_call``, ``llm_call``, ``human_task``) starts only after
everything journaled before its start is committed, so the results it reads are durable before it
acts on them. Events are announced only after their commit.
"""


async def execute_leaf_step(step: AnyStep, config: dict[str, Any], context: StepContext) -> JsonValue:
    """Run one attempt of an ``mcp_call``, ``llm_call`` or ``lua_script`` step with a rendered config."""
    if step.type == "mcp_call":
        return await execute_mcp_call(config, context)
    if step.type == "llm_call":
        return await execute_llm_call(config, context)
    if step.type == "lua_script":
        return await execute_lua_script(config, context)
    raise StepError("internal", f"step type '{step.type}' is not a leaf step")


async def execute_mcp_call(config: dict[str, Any], context: StepContext) -> JsonValue:
    # A thread, because reading a bound secret from the encrypted-file vault can block for seconds.
    spec = await asyncio.to_thread(context.services.mcp_server, config)
    tool = str(config.get("tool") or "")
    if not tool:
        raise StepError("invalid_input", "the mcp_call step names no tool; set config.tool")
    arguments = config.get("arguments") or {}
    context.record_usage("mcp_call", 1, "call", {"server": spec.display_name, "tool": tool})
    scope = CallScope(
        label=f"step {context.step_key} of run {context.run_id}",
        allow_sampling=spec.allow_sampling,
        sampler=_step_sampler(context, spec, tool),
        elicitor=context.ask_person,
    )
    result = await context.services.mcp.call_tool(spec, tool, arguments, on_progress=context.progress, scope=scope)
    return result.value


def _step_sampler(
    context: StepContext, spec: McpServerSpec, tool: str
) -> Callable[[SamplingRequest], Awaitable[SamplingResponse]]:
    """Return the sampler of one step: the services' sampling, metered for the step's run."""

    async def sample(request: SamplingRequest) -> SamplingResponse:
        response = await context.services.sampling(context.services, request)
        detail: dict[str, JsonValue] = {
            "source": "mcp_sampling",
            "server": spec.display_name,
            "tool": tool,
            "model": response.model,
        }
        context.record_usage("mcp_sampling", 1, "request", detail)
        context.record_usage("llm_prompt_tokens", response.prompt_tokens, "token", detail)
        context.record_usage("llm_completion_tokens", response.completion_tokens, "token", detail)
        context.log(f"served a sampling request from MCP server '{spec.display_name}' with model {response.model}")
        return response

    return sample


async def execute_llm_call(config: dict[str, Any], context: StepContext) -> JsonValue:
    """Run an ``llm_call`` step with the LLM that ``resolve_step_llm`` picks for its config.

    A step without ``connection_id`` runs on its provider's environment variables, else the project's
    default connection, else the local model. A step whose connection is named but whose model is
    empty uses that connection's ``settings.default_model``.
    """
    resolved = await resolve_step_llm(context.services, config)
    model = resolved.model or await asyncio.to_thread(_connection_default_model, context.services, config, resolved)
    request = ChatRequest(
        model=model,
        system_prompt=_text(config.get("system_prompt")) or None,
        prompt=_text(config.get("prompt")),
        temperature=config.get("temperature"),
        max_tokens=config.get("max_tokens"),
        output_schema=config.get("output_schema"),
    )
    logger.info(
        "Running llm_call step %s of run %s with %s, model %s",
        context.step_key,
        context.run_id,
        resolved.description,
        model,
    )

    def on_delta(text: str) -> None:
        context.emit(EventType.LLM_TOKEN_DELTA, {"text": text})

    try:
        result = await chat_completion(context.services.http, resolved.endpoint, request, on_delta=on_delta)
    except LlmError as error:
        # The step names no endpoint, so the message says which one the studio chose for it.
        if not config.get("connection_id") and resolved.source != "environment":
            error.name_source(chosen_llm_name(resolved))
        raise
    detail: dict[str, JsonValue] = {
        "model": result.model,
        "base_url": resolved.endpoint.base_url,
        "estimated": result.usage.estimated,
        "source": resolved.source,
    }
    context.record_usage("llm_prompt_tokens", result.usage.prompt_tokens, "token", detail)
    context.record_usage("llm_completion_tokens", result.usage.completion_tokens, "token", detail)
    return result.value


def _connection_default_model(services: ExecutorServices, config: Mapping[str, Any], resolved: ResolvedLlm) -> str:
    """Return the ``default_model`` setting of the step's connection, for a step that names no model.

    Raises:
        StepError: the step names no connection, or its connection has no ``default_model``.
    """
    connection_id = config.get("connection_id")
    row = services.store.get_connection(str(connection_id)) if connection_id and services.store else None
    settings = (row or {}).get("settings") or {}
    model = str(settings.get(DEFAULT_MODEL_SETTING) or "").strip()
    if model:
        return model
    if row is None:
        raise StepError(
            "invalid_input",
            f"the llm_call step names no model, and {resolved.description} has no default model; set config.model",
        )
    raise StepError(
        "invalid_input",
        f"the llm_call step names no model and connection '{row['name']}' has no "
        f"settings.{DEFAULT_MODEL_SETTING}; set config.model or the connection's default model",
    )


async def execute_lua_script(config: dict[str, Any], context: StepContext) -> JsonValue:
    limits = _lua_limits(float(config.get("timeout_s", 5.0)), int(config.get("memory_limit_mb", 64)))
    inputs = config.get("inputs") or {}
    source = str(config.get("source", ""))
    result = await context.services.lua.run(source, inputs, limits, log=context.log)
    schema = config.get("output_schema")
    if isinstance(schema, dict):
        _check_lua_result(result, schema)
    return result


@functools.lru_cache(maxsize=64)
def _lua_limits(timeout_s: float, memory_limit_mb: int) -> LuaLimits:
    """Return the (immutable) limits of a lua_script config; shared, since a fan-out requests the same ones."""
    return LuaLimits(timeout_s=timeout_s, memory_limit_bytes=memory_limit_mb * 1024 * 1024)


def _check_lua_result(result: JsonValue, schema: dict[str, Any]) -> None:
    """Raise StepError when a Lua result does not match the step's declared output schema."""
    validator = compiled_validator(schema)
    if validator is None:
        raise StepError(
            "invalid_input", "the lua_script step's output_schema is not a valid JSON Schema; fix or clear it"
        )
    problem = next(iter(sorted(validator.iter_errors(result), key=lambda found: list(found.absolute_path))), None)
    if problem is None:
        return
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem.absolute_path)
    raise StepError(
        "tool_error",
        f"the script's result{where} does not match the step's output_schema: {problem.message}; "
        "fix the script or the schema",
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def classify_executor_error(error: BaseException) -> StepError | None:
    """Map executor library exceptions to StepError kinds; None for exceptions it does not know."""
    if isinstance(error, LuaTimeoutError):
        return StepError("timeout", error.message)
    if isinstance(error, LuaMemoryError | LuaConversionError):
        return StepError("tool_error", error.message)
    if isinstance(error, LuaScriptError):
        return StepError("tool_error", error.message)
    if isinstance(error, McpTimeoutError):
        return StepError("timeout", str(error))
    if isinstance(error, McpToolError):
        return StepError("tool_error", str(error))
    if isinstance(error, McpAuthError):
        return StepError("invalid_input", str(error))
    if isinstance(error, McpConnectError | McpServerCrashedError):
        return StepError("transient", str(error))
    if isinstance(error, McpError):
        return StepError("invalid_input", str(error))
    if isinstance(error, LlmTimeoutError):
        return StepError("timeout", str(error))
    if isinstance(error, LlmOutputError | LlmProtocolError):
        return StepError("tool_error", str(error))
    if isinstance(error, LlmError):
        return StepError("transient" if error.retryable else "invalid_input", str(error))
    return None
