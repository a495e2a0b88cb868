"""Time limits of MCP instances: checks, and how they reach the engine's server spec."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from studio.mcp.catalog import add_entry
from studio.mcp.errors import McpConfigError
from studio.mcp.instances import Timeouts, check_timeouts, create_instance, set_options
from studio.mcp.resolve import spec_for_instance
from studio.store import Store

ECHO_SERVER = Path(__file__).with_name("echo_server.py")


def echo_instance(store: Store, timeouts: Timeouts | None = None) -> str:
    entry = add_entry(store, "echo", "stdio", command=sys.executable, args=[str(ECHO_SERVER)])
    return create_instance(store, entry, name="echo", timeouts=timeouts).id


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [
        (Timeouts(max_call_s=0), "maximum call time 0 s is invalid"),
        (Timeouts(max_call_s=-5.0), "maximum call time -5.0 s is invalid"),
        (Timeouts(call_s=60, max_call_s=30), "maximum call time 30 s is shorter than the call timeout 60 s"),
    ],
)
def test_invalid_max_call_named(timeouts: Timeouts, expected: str) -> None:
    with pytest.raises(McpConfigError) as raised:
        check_timeouts(timeouts)
    assert expected in str(raised.value)


def test_unset_max_call_reaches_spec(store: Store) -> None:
    echo_instance(store, Timeouts(connect_s=5, call_s=20, progress_extends=True))

    spec = spec_for_instance(store, "echo")

    assert spec.max_call_timeout_s is None
    assert spec.call_timeout_s == 20
    assert spec.reset_timeout_on_progress is True


def test_max_call_reaches_spec(store: Store) -> None:
    echo_instance(store)

    set_options(store, "echo", timeouts=Timeouts(call_s=10, max_call_s=120))
    spec = spec_for_instance(store, "echo")

    assert spec.max_call_timeout_s == 120
    assert spec.call_timeout_s == 10
