"""Credits charged for metered usage: LLM tokens, MCP tool calls and executed steps."""

from __future__ import annotations

CREDITS_PER_UNIT: dict[str, float] = {
    "step": 0.1,
    "mcp_call": 1.0,
    "llm_prompt_tokens": 0.001,
    "llm_completion_tokens": 0.003,
}
"""The local price list, in credits per unit of each usage kind. A sync server may apply its own."""


def credits_for(kind: str, quantity: float) -> float:
    """Return the credits for ``quantity`` units of ``kind``; unknown kinds cost nothing."""
    return round(CREDITS_PER_UNIT.get(kind, 0.0) * quantity, 6)
