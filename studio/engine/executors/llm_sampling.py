"""MCP sampling served by the project's default LLM: a server's ``sampling/createMessage`` becomes one chat call.

Usage (in the MCP client's sampling callback)::

    request = sampling_request_from_mcp(params)
    response = await sample_with_default_llm(services, request, record_usage=context.record_usage)
    return sampling_result_to_mcp(response)

Only text content is sent to the model. Image and audio blocks are rejected with a clear error, because
none of the three protocols this client speaks is wired for them yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from mcp.types import CreateMessageRequestParams, CreateMessageResult, TextContent
from pydantic import JsonValue

from studio.engine.executors.llm import chat_completion, list_models
from studio.engine.executors.llm_default import LlmServices, ResolvedLlm, resolve_default_llm
from studio.engine.executors.llm_errors import LlmConfigError, LlmError
from studio.engine.executors.llm_types import ChatMessage, ChatRequest, LlmEndpoint, TokenUsage
from studio.llm_local import LocalModelManager

__all__ = [
    "SamplingMessage",
    "SamplingRequest",
    "SamplingResponse",
    "UsageRecorder",
    "sample_with_default_llm",
    "sampling_request_from_mcp",
    "sampling_result_to_mcp",
]

logger = logging.getLogger(__name__)

# Same signature as StepContext.record_usage: kind, amount, unit, detail.
UsageRecorder = Callable[[str, float, str, dict[str, JsonValue]], None]

# MCP stop reasons for the OpenAI-style finish reasons chat_completion returns.
_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "tool_calls": "toolUse"}
# Seconds a fetched model list is reused for matching model hints.
_MODEL_LIST_TTL_S = 300.0
_model_lists: dict[str, tuple[float, list[str]]] = {}


@dataclass(frozen=True)
class SamplingMessage:
    """One turn of the conversation a server asks to continue."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class SamplingRequest:
    """A server's sampling request: the conversation, limits and its model preferences."""

    messages: Sequence[SamplingMessage]
    max_tokens: int
    system_prompt: str | None = None
    temperature: float | None = None
    stop_sequences: Sequence[str] = ()
    # Model name hints in order of preference; each matches any model name that contains it.
    model_hints: Sequence[str] = ()
    # Name of the server that asked, for logs and usage records.
    server_name: str = ""

    def __post_init__(self) -> None:
        if not self.messages:
            raise LlmConfigError("the sampling request has no messages; send at least one user message")
        if self.max_tokens < 1:
            raise LlmConfigError(f"the sampling request's maxTokens must be 1 or more, got {self.max_tokens}")


@dataclass(frozen=True)
class SamplingResponse:
    """The model's reply to a sampling request."""

    text: str
    model: str
    # MCP's names: "endTurn", "maxTokens", "stopSequence", "toolUse", or the provider's own reason.
    stop_reason: str | None
    usage: TokenUsage
    # Where the model came from: "connection", "environment" or "local".
    source: str = "local"


async def sample_with_default_llm(
    services: LlmServices,
    request: SamplingRequest,
    *,
    record_usage: UsageRecorder | None = None,
    manager: LocalModelManager | None = None,
) -> SamplingResponse:
    """Serve a sampling request with the project's default LLM and record its token usage.

    The first model hint that is a substring of a model the default connection lists picks the model;
    without a match the connection's ``default_model`` (or the local model) serves. Usage is recorded
    as ``llm_prompt_tokens`` and ``llm_completion_tokens``, as for an ``llm_call`` step, with
    ``"purpose": "mcp_sampling"`` in the detail.

    Raises:
        LlmConfigError: no default LLM and no local model, or an invalid request.
        LlmError: the model call failed; see the subclasses in llm_errors.
    """
    resolved = await resolve_default_llm(services, manager=manager)
    model = await _model_for_hints(services, resolved, request.model_hints)
    chat_request = ChatRequest(
        model=model,
        system_prompt=request.system_prompt,
        prompt="",
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        history=tuple(_chat_message(message) for message in request.messages),
        stop=tuple(request.stop_sequences),
    )
    logger.info(
        "Serving sampling request of MCP server %s with %s, model %s",
        request.server_name or "(unnamed)",
        resolved.description,
        model,
    )
    result = await chat_completion(services.http, resolved.endpoint, chat_request)
    # OpenAI reports "stop" both at the end of a turn and at a stop sequence, and the reply does not contain
    # the stop sequence, so a stop at a stop sequence is reported as "endTurn".
    stop_reason = _STOP_REASONS.get(result.finish_reason, result.finish_reason) if result.finish_reason else None
    if record_usage is not None:
        detail: dict[str, JsonValue] = {
            "model": result.model,
            "base_url": resolved.endpoint.base_url,
            "estimated": result.usage.estimated,
            "purpose": "mcp_sampling",
            "server": request.server_name,
        }
        record_usage("llm_prompt_tokens", result.usage.prompt_tokens, "token", detail)
        record_usage("llm_completion_tokens", result.usage.completion_tokens, "token", detail)
    return SamplingResponse(
        text=result.text, model=result.model, stop_reason=stop_reason, usage=result.usage, source=resolved.source
    )


def _chat_message(message: SamplingMessage) -> ChatMessage:
    if message.role not in ("user", "assistant"):
        raise LlmConfigError(f"sampling message role {message.role!r} is invalid; use 'user' or 'assistant'")
    return {"role": message.role, "content": message.text}


async def _model_for_hints(services: LlmServices, resolved: ResolvedLlm, hints: Sequence[str]) -> str:
    """Return the first listed model that contains a hint (case-insensitive), else the resolved model."""
    wanted = [hint.lower() for hint in hints if hint.strip()]
    if not wanted or resolved.source == "local":
        return resolved.model
    names = await _cached_model_list(services, resolved.endpoint)
    for hint in wanted:
        for name in names:
            if hint in name.lower():
                logger.debug("Model hint %r picked model %s", hint, name)
                return name
    logger.debug("No listed model matches the hints %s; using %s", list(hints), resolved.model)
    return resolved.model


async def _cached_model_list(services: LlmServices, endpoint: LlmEndpoint) -> list[str]:
    key = f"{endpoint.provider} {endpoint.base_url}"
    cached = _model_lists.get(key)
    if cached is not None and time.monotonic() - cached[0] < _MODEL_LIST_TTL_S:
        return cached[1]
    try:
        names = await list_models(services.http, endpoint)
    except LlmError as error:
        logger.warning("Could not list the models at %s for sampling model hints: %s", endpoint.base_url, error)
        names = []
    _model_lists[key] = (time.monotonic(), names)
    return names


def sampling_request_from_mcp(params: CreateMessageRequestParams, *, server_name: str = "") -> SamplingRequest:
    """Convert the MCP SDK's ``CreateMessageRequestParams`` into a SamplingRequest.

    Raises:
        LlmConfigError: a message contains content other than text.
    """
    messages: list[SamplingMessage] = []
    for index, message in enumerate(params.messages):
        texts: list[str] = []
        for block in message.content_as_list:
            if not isinstance(block, TextContent):
                raise LlmConfigError(
                    f"sampling message {index} contains {getattr(block, 'type', type(block).__name__)} content; "
                    "only text is supported"
                )
            texts.append(block.text)
        messages.append(SamplingMessage(role=message.role, text="\n".join(texts)))
    hints: list[str] = []
    if params.model_preferences is not None:
        hints = [hint.name for hint in params.model_preferences.hints or [] if hint.name]
    return SamplingRequest(
        messages=messages,
        max_tokens=params.max_tokens,
        system_prompt=params.system_prompt,
        temperature=params.temperature,
        stop_sequences=tuple(params.stop_sequences or ()),
        model_hints=tuple(hints),
        server_name=server_name,
    )


def sampling_result_to_mcp(response: SamplingResponse) -> CreateMessageResult:
    """Return the MCP SDK's ``CreateMessageResult`` for a SamplingResponse."""
    return CreateMessageResult(
        role="assistant",
        content=TextContent(text=response.text),
        model=response.model,
        stop_reason=response.stop_reason,
    )
