"""Connection tests: one cheap real request per connection that shows whether its secret works, and why not."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import httpx
from sqlalchemy import delete, insert, select

from studio.secrets.connections import Connection, bearer_credentials, get_connection
from studio.secrets.oauth import (
    OAUTH_KIND,
    NotSignedInError,
    OAuthTokenSource,
    get_oauth_state,
    httpx_auth_for_connection,
)
from studio.secrets.oauth_flow import OAuthError, redact
from studio.secrets.vault import SecretsError, SecretVault
from studio.store import Store
from studio.store.connection_tables import connection_checks

logger = logging.getLogger(__name__)

CheckVerdict = Literal[
    "works", "rejected", "expired", "not signed in", "unreachable", "misconfigured", "unexpected"
]
DEFAULT_TIMEOUT_S = 10.0
LLM_PROVIDERS = ("openai", "anthropic", "ollama")
ANTHROPIC_VERSION = "2023-06-01"
"""Value of the anthropic-version header, the same as the engine's default."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a connection test. ``reason`` names the request, the outcome and what to do next."""

    verdict: CheckVerdict
    reason: str
    checked_at: float
    status_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "works"


def check_target(connection: Connection) -> str | None:
    """Return the URL a test requests for this connection, None when there is none.

    ``settings.test_url`` wins. LLM providers get their model list, and other connections their base URL.
    """
    test_url = connection.settings.get("test_url")
    if isinstance(test_url, str) and test_url:
        return test_url
    if connection.provider in LLM_PROVIDERS and connection.base_url:
        return models_url(connection.provider, connection.base_url)
    if connection.base_url and connection.kind != OAUTH_KIND:
        return connection.base_url
    return None


# The engine's LlmEndpoint.models_url and build_headers define the same URLs and headers for LLM calls.
# The layer rules let studio.secrets import nothing from studio.engine, so the rules are repeated here.


def models_url(provider: str, base_url: str) -> str:
    """Return the model list URL of an LLM provider's API at ``base_url``."""
    root = base_url.rstrip("/")
    if provider == "anthropic":
        return root.removesuffix("/v1") + "/v1/models"
    if provider == "ollama":
        return root.removesuffix("/v1").removesuffix("/api") + "/api/tags"
    return root + "/models"


def _llm_headers(connection: Connection, vault: SecretVault) -> dict[str, str] | None:
    """Return the headers an LLM call sends (Anthropic's x-api-key and version included), or None."""
    if connection.kind == OAUTH_KIND or connection.provider not in LLM_PROVIDERS or not connection.base_url:
        return None
    api_key, extra = bearer_credentials(connection, vault)
    headers = {"Accept": "application/json"}
    if connection.provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if api_key:
            headers["x-api-key"] = api_key
    elif api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(extra)
    return headers


async def check_connection(
    store: Store,
    vault: SecretVault,
    id_or_name: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CheckResult:
    """Test a connection with one real request and keep the result as its status.

    ``oauth2`` connections without a test URL are checked at the authorization server: the token is
    introspected when the server offers introspection, else renewed with the refresh token.
    A failed check raises nothing: the result describes the failure.

    Raises:
        ConnectionNotFoundError: no such connection.
    """
    connection = get_connection(store, id_or_name)
    try:
        result = await _check(store, vault, connection, timeout, transport)
    except SecretsError as error:
        verdict: CheckVerdict = "misconfigured"
        if isinstance(error, NotSignedInError):
            verdict = "not signed in"
        elif isinstance(error, OAuthError):
            verdict = "expired"
        result = CheckResult(verdict, str(error), time.time())
    save_check(store, connection.id, result)
    logger.info("Tested connection %s (%s): %s", connection.id, connection.name, result.verdict)
    return result


async def _check(
    store: Store,
    vault: SecretVault,
    connection: Connection,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None,
) -> CheckResult:
    url = check_target(connection)
    if url is None and connection.kind == OAUTH_KIND:
        return await _check_oauth(store, vault, connection, timeout)
    if url is None:
        return CheckResult(
            "misconfigured",
            f"{connection.label} has no URL to test; set its base URL or settings.test_url",
            time.time(),
        )
    # LLM providers get the headers of an LLM call; other kinds authenticate through httpx auth.
    headers = _llm_headers(connection, vault)
    auth = httpx_auth_for_connection(store, vault, connection.id) if headers is None else None
    try:
        async with httpx.AsyncClient(timeout=timeout, transport=transport, auth=auth) as http:
            response = await http.get(url, headers=headers)
    except httpx.HTTPError as error:
        return CheckResult(
            "unreachable",
            f"GET {url} failed: {type(error).__name__}: {redact(str(error), [])}; check the URL and that the "
            "server is running",
            time.time(),
        )
    return _verdict(connection, url, response)


def _verdict(connection: Connection, url: str, response: httpx.Response) -> CheckResult:
    status = response.status_code
    now = time.time()
    if 200 <= status < 300:
        return CheckResult("works", f"GET {url} answered HTTP {status} with the credentials", now, status)
    if status in (401, 403):
        fix = "sign in again" if connection.kind == OAUTH_KIND else "rotate the secret or check the account's access"
        return CheckResult(
            "rejected", f"GET {url} answered HTTP {status}: the server rejected the credentials; {fix}", now, status
        )
    if status == 404:
        return CheckResult(
            "misconfigured",
            f"GET {url} answered HTTP 404; check the base URL, or set settings.test_url to a URL that needs the secret",
            now,
            status,
        )
    return CheckResult("unexpected", f"GET {url} answered HTTP {status}; try again later", now, status)


async def _check_oauth(store: Store, vault: SecretVault, connection: Connection, timeout: float) -> CheckResult:
    state = get_oauth_state(store, connection.id)
    source = OAuthTokenSource(store, vault, connection.id)
    token = await source.token()
    now = time.time()
    if state is not None and state.introspection_endpoint:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(state.introspection_endpoint, data={"token": token})
        active = response.status_code == 200 and response.json().get("active") is True
        if active:
            return CheckResult(
                "works", f"the authorization server {state.introspection_endpoint} reports the token active", now
            )
        await source.refresh(rejected=token)
        return CheckResult("works", "the token was inactive; it was renewed with the refresh token", time.time())
    await source.refresh(rejected=token)
    return CheckResult("works", "the token was renewed with the refresh token", time.time())


def save_check(store: Store, connection_id: str, result: CheckResult) -> None:
    """Keep ``result`` as the connection's last test result."""
    with store.engine.begin() as db:
        db.execute(delete(connection_checks).where(connection_checks.c.connection_id == connection_id))
        db.execute(
            insert(connection_checks).values(
                connection_id=connection_id,
                verdict=result.verdict,
                reason=result.reason,
                status_code=result.status_code,
                checked_at=result.checked_at,
            )
        )


def last_check(store: Store, connection_id: str) -> CheckResult | None:
    """Return the connection's last test result, None when it was never tested."""
    with store.engine.connect() as db:
        row = db.execute(select(connection_checks).where(connection_checks.c.connection_id == connection_id)).first()
    if row is None:
        return None
    return CheckResult(row.verdict, row.reason, row.checked_at, row.status_code)
