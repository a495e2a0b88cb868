"""Heuristics that tell secret environment variables and headers apart from plain settings."""

from __future__ import annotations

import re

_SECRET_NAME = re.compile(
    r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|PAT|AUTH|AUTHORIZATION|CREDENTIALS?|PRIVATE|COOKIE|SESSION)"
    r"($|_)",
    re.IGNORECASE,
)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})
# Prefixes of well-known credential formats: OpenAI and Anthropic keys, GitHub, GitLab and Slack tokens,
# AWS access key ids, and JSON Web Tokens.
_SECRET_VALUE = re.compile(r"^(sk-|sk_|ghp_|gho_|ghs_|github_pat_|glpat-|xox[abpr]-|AKIA[0-9A-Z]{12}|eyJ)")
PLACEHOLDER = re.compile(r"^\$\{(?:(input|env):)?([A-Za-z_][A-Za-z0-9_.-]*)\}$")
"""A whole-value reference such as ${input:api-key}, ${env:TOKEN} or ${TOKEN}, as client configs write them."""


def is_secret_env(name: str, value: str) -> bool:
    """Return whether an environment variable, by its name or its value's format, probably holds a secret."""
    if _SECRET_NAME.search(name.replace("-", "_")):
        return True
    return bool(_SECRET_VALUE.match(value.strip()))


def is_secret_header(name: str, value: str) -> bool:
    """Return whether an HTTP header probably carries a credential."""
    lowered = name.lower()
    if lowered in _SECRET_HEADERS or _SECRET_NAME.search(lowered.replace("-", "_")):
        return True
    return bool(_SECRET_VALUE.match(value.strip().removeprefix("Bearer ").strip()))


def placeholder_name(value: str) -> str | None:
    """Return the referenced name when the whole value is a ${...} placeholder, else None."""
    match = PLACEHOLDER.match(value.strip())
    return match.group(2) if match else None
