"""Serving an MCP server's sampling requests with the studio's default LLM endpoint."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Protocol

from studio.engine.executors.llm import ChatRequest, chat_completion, endpoint_from_env_for
from studio.engine.executors.mcp_callbacks import SamplingRequest, SamplingResponse

if TYPE_CHECKING:
    from studio.engine.executors_api import ExecutorServices

logger = logging.getLogger(__name__)

SAMPLING_MODEL_VARIABLE = "STUDIO_SAMPLING_MODEL"
"""Environment variable naming the model that serves sampling when the server's hints name none."""


class SamplingService(Protocol):
    """Serves one sampling request with the project's default LLM connection."""

    def __call__(self, services: ExecutorServices, request: SamplingRequest) -> Awaitable[SamplingResponse]: ...


class SamplingUnavailableError(Exception):
    """No LLM endpoint or model is configured for sampling; the message says what to set."""


async def sample_with_environment_llm(services: ExecutorServices, request: SamplingRequest) -> SamplingResponse:
    """Serve `request` with the OpenAI-compatible endpoint configured in the environment.

    The model is the first of the server's model hints, else the value of STUDIO_SAMPLING_MODEL.
    NOTE: a conversation of several messages is sent as one prompt with "User:" and "Assistant:"
    lines, because ChatRequest carries a single user prompt.

    Raises:
        SamplingUnavailableError: No endpoint or no model is configured.
        LlmError: The LLM call failed.
    """
    endpoint = endpoint_from_env_for("openai", services.environ)
    if endpoint is None:
        raise SamplingUnavailableError(
            "no default LLM endpoint is configured for sampling; set OPENAI_BASE_URL (and OPENAI_API_KEY)"
        )
    model = _model(request, services.environ)
    chat = ChatRequest(
        model=model,
        system_prompt=request.system_prompt,
        prompt=_prompt(request),
        temperature=request.temperature,
        max_tokens=request.max_tokens,
    )
    result = await chat_completion(services.http, endpoint, chat)
    text = result.value if isinstance(result.value, str) else str(result.value)
    logger.debug("sampling for MCP server %s used model %s", request.server, result.model)
    return SamplingResponse(
        text=text,
        model=result.model or model,
        stop_reason="endTurn",
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
    )


def _model(request: SamplingRequest, environ: Mapping[str, str]) -> str:
    configured = environ.get(SAMPLING_MODEL_VARIABLE, "").strip()
    if configured:
        return configured
    if request.model_hints:
        return request.model_hints[0]
    raise SamplingUnavailableError(
        f"MCP server '{request.server}' named no model for sampling; set {SAMPLING_MODEL_VARIABLE} "
        "to the model the default LLM endpoint should use"
    )


def _prompt(request: SamplingRequest) -> str:
    if len(request.messages) == 1 and request.messages[0].role == "user":
        return request.messages[0].text
    lines = [f"{message.role.capitalize()}: {message.text}" for message in request.messages]
    return "\n\n".join(lines)
