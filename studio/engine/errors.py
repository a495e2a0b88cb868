"""Step failures as the engine records them, and how executor exceptions map to retryable kinds."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import JsonValue

from studio.model.templates import TemplateError

FailureKind = str
"""One of: ``timeout``, ``transient``, ``tool_error``, ``invalid_input``, ``rejected``,
``interrupted``, ``cancelled``, ``internal``. The first three match retry policies' ``retry_on``."""


class StepError(Exception):
    """A step attempt that failed; ``message`` is shown on the step and in the run's error."""

    def __init__(self, kind: FailureKind, message: str, *, detail: dict[str, JsonValue] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail or {}

    def to_json(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {"kind": self.kind, "message": self.message}
        if self.detail:
            data["detail"] = self.detail
        return data


def classify(error: BaseException) -> StepError:
    """Turn any exception raised by an executor into a StepError with a kind retry policies understand."""
    if isinstance(error, StepError):
        return error
    if isinstance(error, TemplateError):
        return StepError("invalid_input", str(error))
    if isinstance(error, TimeoutError):
        return StepError("timeout", str(error) or "the step timed out")
    # Executor libraries are imported lazily so the engine core does not need them to import.
    from studio.engine.executors_api import classify_executor_error

    classified = classify_executor_error(error)
    if classified is not None:
        return classified
    return StepError("internal", f"{type(error).__name__}: {error}")


def is_retryable(kind: FailureKind, retry_on: Sequence[str]) -> bool:
    # Bad input and decisions give the same outcome on every attempt, so no policy retries them.
    if kind in ("invalid_input", "rejected", "cancelled"):
        return False
    if kind == "interrupted":
        return "transient" in retry_on or "any" in retry_on
    return kind in retry_on or "any" in retry_on
