"""Display rows for connection lists: kind, provider, status from the last test or sign-in, and token expiry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.secrets.checks import last_check
from studio.secrets.connections import list_connections
from studio.secrets.oauth import OAUTH_KIND, get_oauth_state
from studio.store import Store


@dataclass(frozen=True)
class ConnectionRow:
    """One connection as lists show it; contains no secret."""

    id: str
    name: str
    kind: str
    provider: str | None
    base_url: str | None
    status: str
    """``not signed in``, ``expired``, ``signed in``, a test verdict (``works``, ``rejected``, …) or ``untested``."""
    status_detail: str
    expires_at: float | None
    has_secret: bool = False
    """Whether a secret is stored in the vault for this connection (the value is never read here)."""

    @property
    def expiry_text(self) -> str:
        if self.expires_at is None:
            return ""
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.expires_at))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "provider": self.provider,
            "base_url": self.base_url,
            "status": self.status,
            "status_detail": self.status_detail,
            "expires_at": self.expires_at,
            "has_secret": self.has_secret,
        }


def connection_rows(store: Store, clock: Callable[[], float] = time.time) -> list[ConnectionRow]:
    """Return every connection of the workspace as a display row, sorted by name."""
    rows: list[ConnectionRow] = []
    for connection in list_connections(store):
        check = last_check(store, connection.id)
        status, detail = ("untested", "") if check is None else (check.verdict, check.reason)
        expires_at = None
        if connection.kind == OAUTH_KIND:
            state = get_oauth_state(store, connection.id)
            expires_at = None if state is None else state.expires_at
            if state is None or not state.signed_in:
                status, detail = "not signed in", "sign in to get tokens"
            elif expires_at is not None and expires_at <= clock() and not state.has_refresh_token:
                status, detail = "expired", "the token expired and cannot be renewed; sign in again"
            elif check is None:
                status, detail = "signed in", ""
        rows.append(
            ConnectionRow(
                id=connection.id,
                name=connection.name,
                kind=connection.kind,
                provider=connection.provider,
                base_url=connection.base_url,
                status=status,
                status_detail=detail,
                expires_at=expires_at,
                has_secret=connection.secret_ref is not None,
            )
        )
    return rows
