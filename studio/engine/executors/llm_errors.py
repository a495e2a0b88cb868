"""Exceptions raised by the LLM client, each with a user-facing message and a retryable flag."""

from __future__ import annotations

from collections.abc import Iterable

# HTTP statuses where sending the same request again later may succeed. Anthropic sends 529 when its
# API is overloaded.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})

_REDACTED = "[redacted]"
# Shorter values are too likely to match ordinary text to be worth replacing.
_MIN_SECRET_LENGTH = 4


class LlmError(Exception):
    """Base class of LLM client errors.

    ``message`` is written for the user and never contains the API key. ``retryable`` is true when
    sending the same request again may succeed, so the engine's retry policy can decide.
    """

    default_retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable

    def name_source(self, source: str) -> None:
        """Put ``source``, the LLM that was chosen for the caller, in front of the message."""
        self.message = f"{source}: {self.message}"
        self.args = (self.message, *self.args[1:])


class LlmConfigError(LlmError, ValueError):
    """Invalid endpoint or request settings, found before anything is sent."""


class LlmHttpError(LlmError):
    """The server replied with an HTTP error status (or sent an error object inside a stream)."""

    def __init__(
        self,
        status: int,
        body_excerpt: str,
        *,
        url: str,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.status = status
        self.body_excerpt = body_excerpt
        self.url = url
        self.hint = hint
        message = f"LLM server at {url} replied HTTP {status}"
        if body_excerpt:
            message += f": {body_excerpt}"
        if hint:
            message += f" ({hint})"
        super().__init__(message, retryable=status in RETRYABLE_STATUSES if retryable is None else retryable)


class LlmRateLimitError(LlmHttpError):
    """The server kept rejecting the request with HTTP 429 after the allowed retries.

    ``retry_after_s`` is the wait the server asked for in its last reply, when it sent one.
    """

    def __init__(
        self,
        status: int,
        body_excerpt: str,
        *,
        url: str,
        hint: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(status, body_excerpt, url=url, hint=hint, retryable=True)


class LlmTimeoutError(LlmError):
    """The server did not connect, accept the request or send data within the endpoint's timeout."""

    default_retryable = True


class LlmConnectError(LlmError):
    """No connection to the server could be made, or it broke before any reply."""

    default_retryable = True


class LlmProtocolError(LlmError):
    """The reply breaks the provider's protocol: HTML, non-JSON, a malformed stream or missing fields."""


class LlmOutputError(LlmError):
    """The model's reply did not parse as JSON or did not match the output schema, even after a corrective retry.

    Retryable, because a model may well produce valid output on another try.
    """

    default_retryable = True


_NOT_FOUND_HINTS = {
    "openai": "check the base URL (it usually ends in /v1) and the model name",
    "anthropic": "check the base URL (the server root, such as https://api.anthropic.com) and the model name",
    "ollama": "check the base URL (the Ollama server root, such as http://127.0.0.1:11434) "
    "and that the model is pulled (ollama pull <model>)",
}
_SCHEMA_REQUEST_FIELDS = {"openai": "response_format json_schema", "anthropic": "tools", "ollama": "format"}


def hint_for_status(status: int, *, output_schema_requested: bool, provider: str = "openai") -> str | None:
    """Return advice for an HTTP error status, or None when there is nothing useful to add."""
    if status in (401, 403):
        return "check the API key"
    if status == 404:
        return _NOT_FOUND_HINTS.get(provider, _NOT_FOUND_HINTS["openai"])
    if status in (400, 422) and output_schema_requested:
        request_field = _SCHEMA_REQUEST_FIELDS.get(provider, "the output schema")
        return f"the server may not support {request_field} for JSON output; check the request settings"
    if status == 429:
        return "rate limited; retry later or lower the request rate"
    if status == 529:
        return "the API is overloaded; retry later"
    if status >= 500:
        return "server-side failure; retry later or check the server's log"
    return None


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret in ``text`` with a placeholder."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, _REDACTED)
    return text
