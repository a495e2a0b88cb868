"""The embedded async engine: runs published workflow versions durably; imports no Qt."""

from studio.engine.engine import Engine, EngineError, InputError, RunSummary
from studio.engine.events import EventType, RunEvent
from studio.engine.executors_api import ExecutorServices, StepContext

__all__ = [
    "Engine",
    "EngineError",
    "EventType",
    "ExecutorServices",
    "InputError",
    "RunEvent",
    "RunSummary",
    "StepContext",
]
