"""Connection records with secrets in a vault: create, rotate, delete, headers per kind, in-use checks."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from studio.secrets import (
    Connection,
    ConnectionConfigError,
    ConnectionInUseError,
    ConnectionNotFoundError,
    SecretNotFoundError,
    SecretsError,
    SecretVault,
    create_connection,
    delete_connection,
    find_connection_uses,
    get_connection,
    list_connections,
    resolve_headers,
    rotate_secret,
)
from studio.store import Store
from tests.conftest import build_workflow, for_each_step, lua_step
from tests.secrets.keyring_backends import MemoryKeyring, RejectingKeyring

SECRET = "sk-connection-test-Hq83Lm2Zp0"
BASE_URL = "http://127.0.0.1:9/v1"


@pytest.fixture
def keychain() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def vault(keychain: MemoryKeyring) -> SecretVault:
    return SecretVault("local", keychain)


def llm_step(step_id: str, connection_id: str) -> dict[str, Any]:
    return {"id": step_id, "type": "llm_call", "config": {"connection_id": connection_id, "prompt": "hi"}}


def test_create_keeps_only_reference(store: Store, vault: SecretVault, keychain: MemoryKeyring) -> None:
    connection = create_connection(
        store, vault, "OpenAI", "api_key", provider="openai", base_url=BASE_URL, secret=SECRET
    )

    row = store.get_connection(connection.id)
    assert row is not None
    assert row["secret_ref"] == f"connection/{connection.id}"
    assert SECRET not in repr(row)
    assert row["kind"] == "api_key"
    assert row["base_url"] == BASE_URL
    assert keychain.values == {("workflow-studio/local", f"connection/{connection.id}"): SECRET}
    assert [c.name for c in list_connections(store)] == ["OpenAI"]
    assert get_connection(store, "OpenAI") == connection


@pytest.mark.parametrize(
    ("kind", "settings", "expected"),
    [
        ("api_key", {}, {"Authorization": f"Bearer {SECRET}"}),
        ("api_key", {"header": "x-api-key"}, {"x-api-key": SECRET}),
        ("bearer", {}, {"Authorization": f"Bearer {SECRET}"}),
        (
            "basic",
            {"username": "robot"},
            {"Authorization": "Basic " + base64.b64encode(f"robot:{SECRET}".encode()).decode()},
        ),
    ],
)
def test_headers_per_kind(
    store: Store, vault: SecretVault, kind: str, settings: dict[str, Any], expected: dict[str, str]
) -> None:
    connection = create_connection(store, vault, "c", kind, base_url=BASE_URL, secret=SECRET, settings=settings)

    assert resolve_headers(connection, vault) == expected


def test_keyless_connection(store: Store, vault: SecretVault, keychain: MemoryKeyring) -> None:
    connection = create_connection(store, vault, "Ollama", "none", provider="ollama", base_url=BASE_URL)

    assert connection.secret_ref is None
    assert resolve_headers(connection, vault) == {}
    assert keychain.values == {}
    with pytest.raises(ConnectionConfigError, match="has no secret to rotate"):
        rotate_secret(store, vault, "Ollama", SECRET)


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        ({"kind": "oauth"}, "invalid connection kind 'oauth'"),
        ({"name": " "}, "invalid connection name"),
        ({"base_url": "ftp://host"}, "must start with http:// or https://"),
        ({"base_url": "https://user:pw@host/v1"}, "contains credentials"),
        ({"kind": "basic"}, "needs settings.username"),
        ({"kind": "basic", "settings": {"username": "a:b"}}, "needs settings.username"),
        ({"settings": {"api_key": "x"}}, "look like secrets"),
        ({"settings": {"note": f"key is {SECRET}"}}, "contain its secret"),
        ({"settings": {"header": "bad header"}}, "invalid settings.header"),
        ({"secret": f"{SECRET}\n"}, "whitespace or a line break"),
        ({"secret": ""}, "needs a non-empty secret"),
        ({"kind": "none"}, "takes no secret"),
    ],
)
def test_create_rejects_bad_fields(
    store: Store, vault: SecretVault, keychain: MemoryKeyring, arguments: dict[str, Any], phrase: str
) -> None:
    values: dict[str, Any] = {"name": "c", "kind": "api_key", "base_url": BASE_URL, "secret": SECRET, **arguments}

    with pytest.raises(ConnectionConfigError, match=phrase) as caught:
        create_connection(store, vault, **values)

    assert SECRET not in str(caught.value)
    assert store.list_connections() == []
    assert keychain.values == {}


def test_duplicate_name_rejected(store: Store, vault: SecretVault) -> None:
    create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret=SECRET)

    with pytest.raises(ConnectionConfigError, match="a connection named 'Gateway' exists already"):
        create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret="other-token")
    assert len(store.list_connections()) == 1


def test_refused_secret_creates_no_record(store: Store) -> None:
    vault = SecretVault("local", RejectingKeyring())

    with pytest.raises(SecretsError, match="could not store the secret of connection 'Gateway'"):
        create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret=SECRET)

    assert store.list_connections() == []


def test_rotate_replaces_secret(store: Store, vault: SecretVault, keychain: MemoryKeyring) -> None:
    connection = create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret=SECRET)

    rotated = rotate_secret(store, vault, connection.id, "new-token-value")

    assert rotated == connection
    assert resolve_headers(connection, vault) == {"Authorization": "Bearer new-token-value"}
    assert list(keychain.values.values()) == ["new-token-value"]
    with pytest.raises(ConnectionConfigError, match="whitespace"):
        rotate_secret(store, vault, connection.id, " padded ")


def test_unknown_connection_not_found(store: Store, vault: SecretVault) -> None:
    with pytest.raises(ConnectionNotFoundError, match="connection 'nope' was not found"):
        get_connection(store, "nope")
    with pytest.raises(ConnectionNotFoundError):
        rotate_secret(store, vault, "nope", SECRET)
    with pytest.raises(ConnectionNotFoundError):
        delete_connection(store, vault, "nope")


def test_delete_unused_removes_secret(store: Store, vault: SecretVault, keychain: MemoryKeyring) -> None:
    connection = create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret=SECRET)

    uses = delete_connection(store, vault, "Gateway")

    assert uses == []
    assert store.get_connection(connection.id) is None
    assert keychain.values == {}


def test_delete_in_use_lists_workflows(store: Store, vault: SecretVault, keychain: MemoryKeyring) -> None:
    connection = create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret=SECRET)
    other = create_connection(store, vault, "Other", "bearer", base_url=BASE_URL, secret="other-token")
    published = build_workflow([llm_step("summarise", connection.id)], name="Summary report")
    store.publish_workflow(published)
    nested = build_workflow(
        [for_each_step("each", [1, 2], [llm_step("ask", connection.id), llm_step("ask_other", other.id)])],
        name="Fan out",
    )
    store.save_draft(nested)
    store.save_draft(build_workflow([lua_step("plain", "return 1")], name="Unrelated"))

    with pytest.raises(ConnectionInUseError) as caught:
        delete_connection(store, vault, connection.id)

    message = str(caught.value)
    assert "workflow 'Summary report' (version 1, steps summarise)" in message
    assert "workflow 'Fan out' (draft, steps ask)" in message
    assert "Unrelated" not in message
    assert {(use.workflow_name, use.where) for use in caught.value.uses} == {
        ("Summary report", "version 1"),
        ("Fan out", "draft"),
    }
    assert store.get_connection(connection.id) is not None, "a rejected delete changes nothing"
    assert len(keychain.values) == 2

    uses = delete_connection(store, vault, connection.id, force=True)

    assert len(uses) == 2
    assert store.get_connection(connection.id) is None
    assert list(keychain.values.values()) == ["other-token"]
    assert [use.step_ids for use in find_connection_uses(store, other.id)] == [("ask_other",)]


def test_missing_secret_error_names_connection(store: Store, vault: SecretVault, keychain: MemoryKeyring) -> None:
    connection = create_connection(store, vault, "Gateway", "bearer", base_url=BASE_URL, secret=SECRET)
    keychain.values.clear()

    with pytest.raises(SecretNotFoundError, match="the secret of connection 'Gateway' is missing"):
        resolve_headers(connection, vault)


def test_connection_record_round_trip(store: Store, vault: SecretVault) -> None:
    created = create_connection(
        store, vault, "Basic", "basic", base_url=BASE_URL, secret=SECRET, settings={"username": "robot"}
    )

    again = Connection.from_row(store.list_connections()[0])

    assert again == created
    assert again.settings == {"username": "robot"}
    assert again.label == "connection 'Basic'"
