"""Default LLM resolution: which endpoint and model serve an ``llm_call`` without a connection, and MCP sampling.

The project's default connection is the LLM connection whose settings contain ``"default": true``
(``"default_model"`` in the same settings names the model used when a request names none). Resolution order:

- an ``llm_call`` step with ``connection_id``: that connection (resolved by the executor services);
- a step without one: the environment variables of the step's provider (see ``endpoint_from_env_for``),
  then the default connection, then the local model (for steps of the "openai" provider, which is the
  protocol the local server speaks);
- MCP sampling: the default connection, then the OpenAI endpoint of the environment (``OPENAI_BASE_URL``
  or ``OPENAI_API_KEY``, with the model in ``STUDIO_SAMPLING_MODEL`` or the server's first model hint),
  then the local model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from studio.engine.executors.llm import (
    endpoint_from_env,
    endpoint_from_env_for,
    list_models,
    missing_endpoint_hint,
    parse_provider,
)
from studio.engine.executors.llm_errors import LlmConfigError, LlmConnectError, LlmError
from studio.engine.executors.llm_types import SUPPORTED_PROVIDERS, LlmEndpoint
from studio.llm_local import (
    LOCAL_MODEL_NAME,
    LocalModelManager,
    LocalModelNotInstalledError,
    LocalModelStartError,
    shared_manager,
)
from studio.secrets import SecretsError, connection_credentials
from studio.store import Store

__all__ = [
    "DEFAULT_MODEL_SETTING",
    "DEFAULT_SETTING",
    "LlmServices",
    "ResolvedLlm",
    "chosen_llm_name",
    "default_connection",
    "list_connection_models",
    "local_model_llm",
    "resolve_default_llm",
    "resolve_sampling_llm",
    "resolve_step_llm",
    "set_default_connection",
]

logger = logging.getLogger(__name__)

DEFAULT_SETTING = "default"
"""Connection setting that marks the project's default LLM connection when true."""
DEFAULT_MODEL_SETTING = "default_model"
"""Connection setting naming the model used when a step or a sampling request names none."""
SAMPLING_MODEL_VARIABLE = "STUDIO_SAMPLING_MODEL"
"""Environment variable naming the model that serves sampling through the environment's OpenAI endpoint."""

# The local model runs on the CPU at about 40 tokens per second (2 cores), so a long reply takes
# minutes and the wait for each chunk is longer than for a remote API.
_LOCAL_REQUEST_TIMEOUT_S = 300.0

LlmSource = Literal["connection", "environment", "local"]

# Seconds a fetched model list is reused for matching sampling model hints.
_MODEL_LIST_TTL_S = 300.0
_model_lists: dict[str, tuple[float, list[str]]] = {}


class LlmServices(Protocol):
    """Executor services as resolution and sampling use them (``ExecutorServices`` provides all of it)."""

    store: Store | None
    environ: dict[str, str]

    @property
    def http(self) -> httpx.AsyncClient: ...

    def llm_endpoint(self, config: Mapping[str, Any]) -> LlmEndpoint: ...


@dataclass(frozen=True)
class ResolvedLlm:
    """The endpoint and model that serve a request, and where they came from (for logs and usage records)."""

    endpoint: LlmEndpoint
    model: str
    source: LlmSource
    # For people: "connection 'Work OpenAI'", "environment", or "local model gemma-3-270m".
    description: str


def chosen_llm_name(resolved: ResolvedLlm) -> str:
    """Return how an error message names an LLM the studio chose, for a request that named none."""
    if resolved.source == "connection":
        return f"default LLM {resolved.description}"
    if resolved.source == "environment":
        return "LLM endpoint of the environment"
    return resolved.description


def default_connection(store: Store) -> dict[str, Any] | None:
    """Return the connection row marked as the project's default LLM connection, or None.

    Raises:
        LlmConfigError: more than one connection is marked.
    """
    marked = [row for row in store.list_connections() if (row.get("settings") or {}).get(DEFAULT_SETTING) is True]
    if len(marked) > 1:
        names = ", ".join(repr(row["name"]) for row in marked)
        raise LlmConfigError(
            f"connections {names} are all marked as the default LLM connection; keep settings.default true on one"
        )
    return marked[0] if marked else None


def set_default_connection(store: Store, connection_id: str | None, *, default_model: str | None = None) -> None:
    """Mark one connection as the project's default LLM connection (None clears the mark) and unmark the others.

    Raises:
        LlmConfigError: the connection does not exist, or its provider is not an LLM provider.
    """
    if connection_id is not None:
        row = store.get_connection(connection_id)
        if row is None:
            raise LlmConfigError(
                f"connection {connection_id!r} was not found; list them with 'studio connections list'"
            )
        if row.get("provider") not in SUPPORTED_PROVIDERS:
            raise LlmConfigError(
                f"connection {row['name']!r} has provider {row.get('provider')!r}; the default LLM connection needs "
                f"one of {', '.join(SUPPORTED_PROVIDERS)}"
            )
    for row in store.list_connections():
        settings = dict(row.get("settings") or {})
        is_target = row["id"] == connection_id
        if is_target:
            settings[DEFAULT_SETTING] = True
            if default_model is not None:
                settings[DEFAULT_MODEL_SETTING] = default_model
        elif settings.pop(DEFAULT_SETTING, None) is None:
            continue
        store.update_connection(str(row["id"]), settings=settings)
    logger.info("Default LLM connection set to %s", connection_id)


async def list_connection_models(
    client: httpx.AsyncClient, store: Store, id_or_name: str, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Return the models that a stored LLM connection's server offers, as its provider lists them.

    Raises:
        LlmConfigError: no such connection, a provider other than openai, anthropic or ollama, no base URL,
            or its secret cannot be read.
        LlmError: the request failed; see ``list_models``.
    """
    row = store.get_connection(id_or_name)
    if row is None:
        row = next((candidate for candidate in store.list_connections() if candidate["name"] == id_or_name), None)
    if row is None:
        raise LlmConfigError(f"connection {id_or_name!r} was not found; list them with 'studio connections list'")
    endpoint = await _connection_endpoint(store, row, environ)
    return await list_models(client, endpoint)


async def _connection_endpoint(store: Store, row: Mapping[str, Any], environ: Mapping[str, str] | None) -> LlmEndpoint:
    name = str(row["name"])
    provider = row.get("provider")
    if provider not in SUPPORTED_PROVIDERS or not row.get("base_url"):
        raise LlmConfigError(
            f"LLM connection '{name}' needs a provider ({', '.join(SUPPORTED_PROVIDERS)}) and a base URL; "
            "edit the connection"
        )
    try:
        # A thread, because reading a secret from the encrypted-file vault can block for seconds.
        api_key, headers = await asyncio.to_thread(connection_credentials, store, row, environ)
    except SecretsError as error:
        raise LlmConfigError(f"LLM connection '{name}': {error}") from None
    return LlmEndpoint(
        provider=parse_provider(provider), base_url=str(row["base_url"]), api_key=api_key, extra_headers=headers
    )


async def resolve_step_llm(
    services: LlmServices, config: Mapping[str, Any], *, manager: LocalModelManager | None = None
) -> ResolvedLlm:
    """Return the endpoint and model for an ``llm_call`` step's rendered config.

    Raises:
        LlmConfigError: invalid provider, unknown connection, or nothing configured and no local model
            installed (the message names the install command and the variables to set).
        LlmConnectError: the local model server did not start.
    """
    provider = parse_provider(config.get("provider"))
    model = str(config.get("model") or "").strip()
    if config.get("connection_id"):
        # A thread, because reading a secret from the encrypted-file vault can block for seconds.
        endpoint = await asyncio.to_thread(services.llm_endpoint, config)
        return ResolvedLlm(endpoint, model, "connection", f"connection '{config['connection_id']}'")

    from_env = endpoint_from_env_for(provider, services.environ)
    if from_env is not None:
        return ResolvedLlm(from_env, model, "environment", "environment")

    resolved = await _default_connection_llm(services, model)
    if resolved is not None:
        return resolved
    if provider != "openai":
        raise LlmConfigError(
            f"no LLM endpoint is configured for provider '{provider}'; {missing_endpoint_hint(provider)}, "
            "give the step a connection_id, or mark a connection as the project's default"
        )
    return await local_model_llm(manager, model or LOCAL_MODEL_NAME, missing=missing_endpoint_hint(provider))


async def resolve_default_llm(
    services: LlmServices, *, model: str | None = None, manager: LocalModelManager | None = None
) -> ResolvedLlm:
    """Return the project's default LLM: the default connection, else the local model (started when needed).

    ``model`` overrides the connection's ``default_model``.

    Raises:
        LlmConfigError: two default connections, a default connection without a model, or no local model.
        LlmConnectError: the local model server did not start.
    """
    resolved = await _default_connection_llm(services, (model or "").strip())
    if resolved is not None:
        return resolved
    return await local_model_llm(manager, model or LOCAL_MODEL_NAME, missing=None)


async def resolve_sampling_llm(
    services: LlmServices, hints: Sequence[str] = (), *, manager: LocalModelManager | None = None
) -> ResolvedLlm:
    """Return the LLM that serves MCP sampling: the default connection, the environment, else the local model.

    With the default connection, the model is the first listed model that contains one of ``hints``
    (case-insensitive, hints in order), else the connection's ``default_model``. With the environment's
    endpoint it is ``STUDIO_SAMPLING_MODEL``, else the first listed model matching a hint, else the
    first hint itself.

    Raises:
        LlmConfigError: nothing configured and no local model, or no model can be chosen.
        LlmConnectError: the local model server did not start.
    """
    resolved = await _default_connection_llm(services, "", allow_missing_model=bool(hints))
    if resolved is not None:
        return await _with_hinted_model(services, resolved, hints)
    from_env = endpoint_from_env(services.environ)
    if from_env is not None:
        configured = services.environ.get(SAMPLING_MODEL_VARIABLE, "").strip()
        first_hint = next((hint for hint in hints if hint.strip()), "")
        if configured:
            return ResolvedLlm(from_env, configured, "environment", "environment")
        if not first_hint:
            raise LlmConfigError(
                f"the sampling request names no model hint; set {SAMPLING_MODEL_VARIABLE} to the model that "
                "the endpoint in OPENAI_BASE_URL should use, or mark a connection with a default_model as default"
            )
        return await _with_hinted_model(
            services, ResolvedLlm(from_env, first_hint, "environment", "environment"), hints
        )
    return await local_model_llm(manager, LOCAL_MODEL_NAME, missing=None)


async def _with_hinted_model(services: LlmServices, resolved: ResolvedLlm, hints: Sequence[str]) -> ResolvedLlm:
    """Return ``resolved`` with the first listed model that contains a hint, or unchanged when none matches."""
    hint_texts = [hint.strip().lower() for hint in hints if hint.strip()]
    if not hint_texts:
        return resolved
    names = await _cached_model_list(services, resolved.endpoint)
    for hint in hint_texts:
        for name in names:
            if hint in name.lower():
                logger.debug("Sampling model hint %r picked model %s", hint, name)
                return ResolvedLlm(resolved.endpoint, name, resolved.source, resolved.description)
    if not resolved.model:
        raise LlmConfigError(
            f"no model listed by {resolved.description} matches the sampling hints {list(hints)}, and it names no "
            f"default model; set its settings.{DEFAULT_MODEL_SETTING}"
        )
    return resolved


async def _cached_model_list(services: LlmServices, endpoint: LlmEndpoint) -> list[str]:
    key = f"{endpoint.provider} {endpoint.base_url}"
    cached = _model_lists.get(key)
    if cached is not None and time.monotonic() - cached[0] < _MODEL_LIST_TTL_S:
        return cached[1]
    try:
        names = await list_models(services.http, endpoint)
    except LlmError as error:
        logger.warning("Could not list the models at %s to match sampling model hints: %s", endpoint.base_url, error)
        names = []
    _model_lists[key] = (time.monotonic(), names)
    return names


async def _default_connection_llm(
    services: LlmServices, model: str, *, allow_missing_model: bool = False
) -> ResolvedLlm | None:
    if services.store is None:
        return None
    row = default_connection(services.store)
    if row is None:
        return None
    name = str(row["name"])
    chosen_model = model or str((row.get("settings") or {}).get(DEFAULT_MODEL_SETTING) or "").strip()
    if not chosen_model and not allow_missing_model:
        raise LlmConfigError(
            f"the default LLM connection '{name}' names no model; set its settings.{DEFAULT_MODEL_SETTING} "
            "or the step's model"
        )
    endpoint = await _connection_endpoint(services.store, row, services.environ)
    return ResolvedLlm(endpoint, chosen_model, "connection", f"connection '{name}'")


async def local_model_llm(manager: LocalModelManager | None, model: str, *, missing: str | None) -> ResolvedLlm:
    """Return the local model's endpoint, starting its server when needed.

    ``missing`` is advice added to the not-installed error about the other ways to configure an LLM.

    Raises:
        LlmConfigError: the local model is not installed; the message names the install command.
        LlmConnectError: the server did not start; the message contains its last output.
    """
    manager = manager or shared_manager()
    try:
        base_url = await manager.base_url()
    except LocalModelNotInstalledError as error:
        others = f"; or {missing}" if missing else ""
        raise LlmConfigError(
            f"no LLM is configured and {error}{others}; or mark a connection as the project's default"
        ) from None
    except LocalModelStartError as error:
        raise LlmConnectError(str(error)) from None
    # NOTE: llama_cpp.server 0.3.36 sends no token usage while streaming, so streamed calls on the local
    # model report estimated usage (TokenUsage.estimated). Unstreamed calls get the server's exact counts.
    endpoint = LlmEndpoint(provider="openai", base_url=base_url, request_timeout_s=_LOCAL_REQUEST_TIMEOUT_S)
    return ResolvedLlm(endpoint, model, "local", f"local model {LOCAL_MODEL_NAME}")
