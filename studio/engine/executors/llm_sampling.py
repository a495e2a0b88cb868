"""MCP sampling served by the project's default LLM: a server's ``sampling/createMessage`` becomes one chat call.

``sample_with_default_llm`` has the signature of ``ExecutorServices.sampling``, so it plugs in as::

    services = ExecutorServices(store, sampling=sample_with_default_llm)

The caller records usage from the returned token counts, as for an ``llm_call`` step. The conversation
goes to the model as real turns (not one flattened prompt), with the stop sequences, temperature and
maximum tokens of the request.
"""

from __future__ import annotations

import logging

from studio.engine.executors.llm import chat_completion
from studio.engine.executors.llm_default import LlmServices, chosen_llm_name, resolve_sampling_llm
from studio.engine.executors.llm_errors import LlmConfigError, LlmError
from studio.engine.executors.llm_types import ChatMessage, ChatRequest
from studio.engine.executors.mcp_callbacks import SamplingMessage, SamplingRequest, SamplingResponse
from studio.llm_local import LocalModelManager

__all__ = ["SamplingMessage", "SamplingRequest", "SamplingResponse", "sample_with_default_llm"]

logger = logging.getLogger(__name__)

# MCP stop reasons for the OpenAI-style finish reasons that chat_completion returns.
_STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "tool_calls": "toolUse"}


async def sample_with_default_llm(
    services: LlmServices, request: SamplingRequest, *, manager: LocalModelManager | None = None
) -> SamplingResponse:
    """Serve a sampling request with the project's default LLM (see ``resolve_sampling_llm``).

    Raises:
        LlmConfigError: no LLM can be chosen, or the request is invalid (no messages, maxTokens below 1).
        LlmError: the model call failed; see the subclasses in llm_errors.
    """
    resolved = await resolve_sampling_llm(services, request.model_hints, manager=manager)
    chat_request = ChatRequest(
        model=resolved.model,
        system_prompt=request.system_prompt,
        prompt="",
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        history=_history(request),
        stop=tuple(request.stop_sequences),
    )
    logger.info(
        "Serving a sampling request of MCP server %s with %s, model %s",
        request.server,
        resolved.description,
        resolved.model,
    )
    # Unstreamed: nothing shows the reply while it arrives, and some servers (llama_cpp.server among them)
    # send exact token counts only without streaming.
    try:
        result = await chat_completion(services.http, resolved.endpoint, chat_request, stream=False)
    except LlmError as error:
        error.name_source(chosen_llm_name(resolved))
        raise
    # OpenAI reports "stop" both at the end of a turn and at a stop sequence, and the reply does not
    # contain the stop sequence, so a stop at a stop sequence is reported as "endTurn" too.
    stop_reason = _STOP_REASONS.get(result.finish_reason, result.finish_reason) if result.finish_reason else None
    return SamplingResponse(
        text=result.text,
        model=result.model,
        stop_reason=stop_reason,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
    )


def _history(request: SamplingRequest) -> tuple[ChatMessage, ...]:
    if not request.messages:
        raise LlmConfigError(f"the sampling request of MCP server {request.server} has no messages")
    return tuple({"role": message.role, "content": message.text} for message in request.messages)
