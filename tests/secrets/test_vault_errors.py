"""Errors of connection use when the vault or the authorization server refuses: what failed, what to do, no secret."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import keyring.errors
import pytest

from studio.secrets import (
    SecretVault,
    VaultAccessError,
    create_connection,
    encrypted_file_vault,
    open_vault,
)
from studio.secrets.checks import check_connection
from studio.secrets.oauth import (
    OAuthTokenSource,
    TokenExpiredError,
    create_oauth_connection,
    httpx_auth_for_connection,
    sign_in,
)
from studio.store import Store
from tests.fakes.oauth_server import FakeOAuthServer, oauth_server
from tests.secrets.keyring_backends import PASSPHRASE, MemoryKeyring, RejectingKeyring

SECRET = "sk-vault-error-canary-W3r8"


class LockedAfterWrite(MemoryKeyring):
    """A keychain that stores values, then locks: reads fail as a locked Secret Service collection does."""

    locked = False

    def get_password(self, service: str, username: str) -> str | None:
        if self.locked:
            raise keyring.errors.KeyringLocked("Failed to unlock the collection!")
        return super().get_password(service, username)


class RejectingTokenWrites(MemoryKeyring):
    """A keychain that refuses to store values that look like OAuth tokens, quoting them in its error."""

    def set_password(self, service: str, username: str, password: str) -> None:
        if "access_token" in password:
            raise keyring.errors.PasswordSetError(f"refusing {password}: access denied by policy")
        super().set_password(service, username, password)


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


async def follow_in_browser(url: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


async def sign_in_static(store: Store, vault: SecretVault, server: FakeOAuthServer, name: str = "API") -> str:
    client = server.add_client()
    connection = create_oauth_connection(
        store,
        vault,
        name,
        authorization_endpoint=f"{server.base_url}/authorize",
        token_endpoint=f"{server.base_url}/token",
        client_id=client.client_id,
    )
    await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    return connection.id


def issued_tokens(server: FakeOAuthServer) -> list[str]:
    return [*server.access_tokens, *server.refresh_tokens]


async def test_locked_keychain_on_token_read(store: Store, auth_server: FakeOAuthServer) -> None:
    keychain = LockedAfterWrite()
    vault = SecretVault("local", keychain)
    connection_id = await sign_in_static(store, vault, auth_server)
    keychain.locked = True

    with pytest.raises(VaultAccessError) as raised:
        await OAuthTokenSource(store, vault, connection_id).token()

    message = str(raised.value)
    assert "connection 'API'" in message
    assert "is locked; unlock it" in message
    for token in issued_tokens(auth_server):
        assert token not in message


async def test_locked_keychain_in_connection_test(store: Store) -> None:
    keychain = LockedAfterWrite()
    vault = SecretVault("local", keychain)
    create_connection(store, vault, "Gateway", "bearer", secret=SECRET, settings={"test_url": "http://127.0.0.1:9/"})
    keychain.locked = True

    result = await check_connection(store, vault, "Gateway")

    assert result.verdict == "misconfigured"
    assert "locked" in result.reason
    assert SECRET not in result.reason


async def test_refused_token_write_hides_tokens(
    store: Store, auth_server: FakeOAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vault = SecretVault("local", RejectingTokenWrites())

    with pytest.raises(VaultAccessError) as raised:
        await sign_in_static(store, vault, auth_server)

    message = str(raised.value)
    assert "could not store the secret of connection 'API'" in message
    assert "set STUDIO_SECRETS_BACKEND=file" in message
    tokens = issued_tokens(auth_server)
    assert tokens
    for token in tokens:
        assert token not in message
        assert token not in caplog.text


def test_refusing_keychain_creates_nothing(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    vault = SecretVault("local", RejectingKeyring())

    with pytest.raises(VaultAccessError) as raised:
        create_connection(store, vault, "Gateway", "bearer", secret=SECRET)

    assert "connection 'Gateway'" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in caplog.text
    assert store.list_connections() == []


async def test_expired_token_in_blocking_client(store: Store, auth_server: FakeOAuthServer) -> None:
    auth_server.issue_refresh_tokens = False
    vault = SecretVault("local", MemoryKeyring())
    connection_id = await sign_in_static(store, vault, auth_server)
    later = time.time() + 7200
    auth = httpx_auth_for_connection(store, vault, connection_id, clock=lambda: later)

    with httpx.Client(auth=auth) as client, pytest.raises(TokenExpiredError) as raised:
        client.get(f"{auth_server.base_url}/.well-known/oauth-authorization-server")

    message = str(raised.value)
    assert "connection 'API'" in message
    assert "sign in again with 'studio connections login API'" in message


def test_wrong_passphrase_for_file_vault(tmp_path: Path) -> None:
    path = tmp_path / "secrets.cfg"
    encrypted_file_vault("local", path, PASSPHRASE, reuse=False).set("connection/x", SECRET)
    wrong = "not the passphrase 42"

    with pytest.raises(VaultAccessError) as raised:
        open_vault("local", environ={"STUDIO_SECRETS_BACKEND": "file"}, passphrase=wrong, secrets_file=path)

    message = str(raised.value)
    assert "does not unlock the encrypted secrets file" in message
    assert str(path) in message
    assert wrong not in message
    assert SECRET not in message
    assert SECRET.encode() not in path.read_bytes()


async def test_oauth_tokens_in_file_vault(store: Store, auth_server: FakeOAuthServer, tmp_path: Path) -> None:
    path = tmp_path / "secrets.cfg"
    vault = encrypted_file_vault("local", path, PASSPHRASE, reuse=False)
    connection_id = await sign_in_static(store, vault, auth_server)

    stored = json.loads(vault.get(f"connection/{connection_id}"))

    assert set(stored) == {"access_token", "refresh_token"}
    file_bytes = path.read_bytes()
    for token in issued_tokens(auth_server):
        assert token.encode() not in file_bytes
