"""Connections: named endpoints whose secret lives in the vault while the store keeps only a reference.

The kind of a connection selects how its secret authenticates requests:

- ``api_key``: the key is sent as ``Authorization: Bearer <key>``, or raw in the header named by the
  ``header`` setting (for example ``x-api-key``).
- ``bearer``: a token sent as ``Authorization: Bearer <token>``.
- ``basic``: HTTP Basic authentication with the ``username`` setting and the secret as password.
- ``oauth2``: OAuth 2 authorization code with PKCE; the vault keeps the tokens as JSON and
  ``studio.secrets.oauth`` signs in and renews them.
- ``none``: no secret, for local servers such as Ollama.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.secrets.vault import SecretsError, SecretVault, open_vault
from studio.store import Store, new_id

logger = logging.getLogger(__name__)

CONNECTION_KINDS = ("api_key", "bearer", "basic", "oauth2", "none")
SECRET_REF_PREFIX = "connection/"
# Setting names that suggest a secret was put in the settings, which the store writes in plain text.
_SECRET_SETTING_NAMES = frozenset({"api_key", "apikey", "key", "token", "password", "secret", "authorization"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_MAX_NAME_LENGTH = 200


class ConnectionConfigError(SecretsError):
    """Invalid connection fields; the message names the field and the fix."""


class ConnectionNotFoundError(SecretsError):
    """No connection with the given id or name."""


@dataclass(frozen=True)
class ConnectionUse:
    """Steps of one workflow document that name a connection."""

    workflow_id: str
    workflow_name: str
    version: int | None
    """None for the draft, else the version number (negative for a test snapshot)."""
    step_ids: tuple[str, ...]

    @property
    def where(self) -> str:
        if self.version is None:
            return "draft"
        return f"version {self.version}" if self.version > 0 else "test snapshot"

    def describe(self) -> str:
        return f"workflow '{self.workflow_name}' ({self.where}, steps {', '.join(self.step_ids)})"


class ConnectionInUseError(SecretsError):
    """A delete of a connection that workflow steps, MCP instances or linked owners still use."""

    def __init__(self, message: str, uses: list[ConnectionUse]) -> None:
        super().__init__(message)
        self.uses = uses
        self.usages: list[Any] = []
        """Every owner as ``studio.secrets.usage.ConnectionUsage``: workflows, MCP instances, links."""


@dataclass(frozen=True)
class Connection:
    """A stored connection record. It contains ``secret_ref``, never the secret itself."""

    id: str
    name: str
    kind: str
    provider: str | None
    base_url: str | None
    secret_ref: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Connection:
        return cls(
            id=str(row["id"]),
            name=str(row["name"]),
            kind=str(row["kind"]),
            provider=row.get("provider"),
            base_url=row.get("base_url"),
            secret_ref=row.get("secret_ref"),
            settings=dict(row.get("settings") or {}),
            created_at=float(row.get("created_at") or 0.0),
        )

    @property
    def label(self) -> str:
        return f"connection '{self.name}'"


# -- validation ---------------------------------------------------------------------------------


def _check_fields(
    name: str, kind: str, provider: str | None, base_url: str | None, settings: Mapping[str, Any]
) -> None:
    if not name or not name.strip() or len(name) > _MAX_NAME_LENGTH:
        raise ConnectionConfigError(f"invalid connection name {name!r}; give 1 to {_MAX_NAME_LENGTH} characters")
    if kind not in CONNECTION_KINDS:
        raise ConnectionConfigError(f"invalid connection kind {kind!r}; use one of {', '.join(CONNECTION_KINDS)}")
    if provider is not None and not (0 < len(provider) <= 32):
        raise ConnectionConfigError(f"invalid provider {provider!r}; give 1 to 32 characters or none")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise ConnectionConfigError(f"invalid base URL {base_url!r}; it must start with http:// or https://")
    if base_url is not None and "@" in base_url.split("/")[2]:
        raise ConnectionConfigError(
            "invalid base URL: it contains credentials; remove them and pass the secret separately"
        )
    leaked = sorted(key for key in settings if key.lower().replace("-", "_") in _SECRET_SETTING_NAMES)
    if leaked:
        raise ConnectionConfigError(
            f"settings {leaked} look like secrets, and settings are stored in plain text; pass the value as "
            "the connection's secret instead"
        )
    if kind == "basic":
        username = settings.get("username")
        if not isinstance(username, str) or not username or ":" in username:
            raise ConnectionConfigError("a basic connection needs settings.username: a non-empty user name without ':'")
    header = settings.get("header")
    if header is not None and (kind != "api_key" or not isinstance(header, str) or not _HEADER_NAME.match(header)):
        raise ConnectionConfigError(
            f"invalid settings.header {header!r}; only api_key connections take it, as an HTTP header name "
            "such as x-api-key"
        )


def _check_secret(kind: str, secret: str | None, settings: Mapping[str, Any], label: str) -> None:
    if kind == "oauth2" and secret is None:
        return  # the tokens arrive with the sign-in
    if kind == "none":
        if secret is not None:
            raise ConnectionConfigError(f"{label} has kind 'none' and takes no secret; choose another kind")
        return
    if not isinstance(secret, str) or not secret:
        raise ConnectionConfigError(f"{label} of kind '{kind}' needs a non-empty secret")
    if secret != secret.strip() or any(ch in secret for ch in "\r\n"):
        raise ConnectionConfigError(
            f"the secret of {label} has leading or trailing whitespace or a line break; remove it"
        )
    if any(isinstance(value, str) and secret in value for value in _strings(settings)):
        raise ConnectionConfigError(
            f"the settings of {label} contain its secret, and settings are stored in plain text; remove it"
        )


def _strings(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    else:
        yield value


# -- records ------------------------------------------------------------------------------------


def list_connections(store: Store) -> list[Connection]:
    return [Connection.from_row(row) for row in store.list_connections()]


def get_connection(store: Store, id_or_name: str) -> Connection:
    """Return the connection with this id, else the one with this name.

    Raises:
        ConnectionNotFoundError: none matches.
    """
    row = store.get_connection(id_or_name)
    if row is not None:
        return Connection.from_row(row)
    for connection in list_connections(store):
        if connection.name == id_or_name:
            return connection
    raise ConnectionNotFoundError(
        f"connection {id_or_name!r} was not found; list the connections with 'studio connections list'"
    )


def create_connection(
    store: Store,
    vault: SecretVault,
    name: str,
    kind: str,
    provider: str | None = None,
    base_url: str | None = None,
    secret: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Connection:
    """Store ``secret`` in the vault and create the connection record that refers to it.

    Raises:
        ConnectionConfigError: an invalid field, or a name that another connection has.
        SecretsError: the vault refused the secret; then no record is created.
    """
    values = dict(settings or {})
    _check_fields(name, kind, provider, base_url, values)
    label = f"connection '{name}'"
    _check_secret(kind, secret, values, label)
    if any(existing.name == name for existing in list_connections(store)):
        raise ConnectionConfigError(f"a connection named {name!r} exists already; choose another name")

    connection_id = new_id()
    secret_ref = None if secret is None and kind != "oauth2" else f"{SECRET_REF_PREFIX}{connection_id}"
    if secret_ref is not None and secret is not None:
        vault.set(secret_ref, secret, label=label)
    try:
        store.add_connection(
            id=connection_id,
            name=name,
            kind=kind,
            provider=provider,
            base_url=base_url,
            secret_ref=secret_ref,
            settings=values,
            created_at=time.time(),
        )
    except Exception:
        if secret_ref is not None:
            vault.delete(secret_ref, label=label)
        raise
    logger.info("Created connection %s (%s, kind %s) in %s", connection_id, name, kind, vault.backend_description())
    return get_connection(store, connection_id)


def rotate_secret(store: Store, vault: SecretVault, id_or_name: str, secret: str) -> Connection:
    """Replace the secret of a connection; the record itself does not change.

    Raises:
        ConnectionNotFoundError, ConnectionConfigError, SecretsError.
    """
    connection = get_connection(store, id_or_name)
    if connection.kind == "none" or connection.secret_ref is None:
        raise ConnectionConfigError(f"{connection.label} has no secret to rotate (kind '{connection.kind}')")
    if connection.kind == "oauth2":
        raise ConnectionConfigError(
            f"{connection.label} gets its tokens from the sign-in; sign in again to replace them"
        )
    _check_secret(connection.kind, secret, connection.settings, connection.label)
    vault.set(connection.secret_ref, secret, label=connection.label)
    logger.info("Rotated the secret of connection %s (%s)", connection.id, connection.name)
    return connection


def find_connection_uses(store: Store, connection_id: str) -> list[ConnectionUse]:
    """Return the drafts and versions whose steps (nested ones too) set ``config.connection_id``."""
    uses: list[ConnectionUse] = []
    for document in store.workflow_documents():
        step_ids = tuple(sorted(set(_steps_using(document["document"], connection_id))))
        if step_ids:
            uses.append(
                ConnectionUse(
                    workflow_id=str(document["workflow_id"]),
                    workflow_name=str(document["workflow_name"]),
                    version=document["version"],
                    step_ids=step_ids,
                )
            )
    return uses


def _steps_using(value: Any, connection_id: str) -> Iterator[str]:
    # Walk the whole JSON document, so steps nested in for_each bodies are found too.
    if isinstance(value, Mapping):
        config = value.get("config")
        if "type" in value and isinstance(config, Mapping) and config.get("connection_id") == connection_id:
            yield str(value.get("id"))
        for item in value.values():
            yield from _steps_using(item, connection_id)
    elif isinstance(value, list):
        for item in value:
            yield from _steps_using(item, connection_id)


def delete_connection(store: Store, vault: SecretVault, id_or_name: str, *, force: bool = False) -> list[ConnectionUse]:
    """Delete a connection and its secret; return the workflow documents that still named it.

    Raises:
        ConnectionInUseError: workflow steps, MCP instances or linked owners use the connection and
            ``force`` is false; nothing is deleted. Its ``usages`` lists every owner.
        ConnectionNotFoundError, SecretsError.
    """
    from studio.secrets.usage import where_used

    connection = get_connection(store, id_or_name)
    uses = find_connection_uses(store, connection.id)
    usages = where_used(store, connection.id)
    if usages and not force:
        listed = "; ".join(usage.describe() for usage in usages)
        error = ConnectionInUseError(
            f"{connection.label} is used by {listed}; change those first, or delete with force", uses
        )
        error.usages = usages
        raise error
    if connection.secret_ref is not None:
        vault.delete(connection.secret_ref, label=connection.label)
    store.delete_connection(connection.id)
    if usages:
        logger.warning(
            "Deleted connection %s (%s) that %d owners still use", connection.id, connection.name, len(usages)
        )
    else:
        logger.info("Deleted connection %s (%s)", connection.id, connection.name)
    return uses


# -- authentication -----------------------------------------------------------------------------


def resolve_headers(connection: Connection, vault: SecretVault) -> dict[str, str]:
    """Return the HTTP headers that authenticate a request with this connection's secret.

    The returned values contain the secret: never log them. For an ``oauth2`` connection this is the
    stored access token as it is, even when it has expired; callers that can renew it use
    ``studio.secrets.oauth``.
    """
    if connection.kind == "none" or connection.secret_ref is None:
        return {}
    secret = vault.get(connection.secret_ref, label=connection.label)
    if connection.kind == "oauth2":
        return {"Authorization": f"Bearer {_stored_access_token(connection, secret)}"}
    if connection.kind == "basic":
        username = str(connection.settings.get("username", ""))
        token = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    header = connection.settings.get("header") if connection.kind == "api_key" else None
    if header and str(header).lower() != "authorization":
        return {str(header): secret}
    return {"Authorization": f"Bearer {secret}"}


def _stored_access_token(connection: Connection, payload: str) -> str:
    try:
        token = json.loads(payload).get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise SecretsError(
            f"{connection.label} is not signed in; sign in with 'studio connections login {connection.name}' "
            "or the Sign in button of the Connections panel"
        )
    return token


def bearer_credentials(connection: Connection, vault: SecretVault) -> tuple[str | None, dict[str, str]]:
    """Split the connection's headers into a bearer token (an API key) and the remaining headers."""
    headers = resolve_headers(connection, vault)
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        del headers["Authorization"]
        return authorization.removeprefix("Bearer "), headers
    return None, headers


def connection_credentials(
    store: Store, row: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[str | None, dict[str, str]]:
    """Open the workspace's vault when the connection has a secret; return (API key, extra headers).

    NOTE: this call blocks. With the encrypted file, the first call per file and passphrase unlocks it
    and decrypts the value (about 2 s of Argon2id on a 2-core machine); later calls read a cache
    until the file changes. An ``oauth2`` connection whose token is due is renewed with a blocking
    request to its token endpoint (30 s timeout). An async caller on an event loop stalls the loop
    for that time.

    Raises:
        SecretsError: no usable vault, or the secret is missing or unreadable.
    """
    connection = Connection.from_row(row)
    if connection.kind == "none" or connection.secret_ref is None:
        return None, {}
    vault = open_vault(store.workspace_slug(), environ=environ)
    if connection.kind == "oauth2":
        from studio.secrets.oauth import access_token_sync

        return access_token_sync(store, vault, connection), {}
    return bearer_credentials(connection, vault)
