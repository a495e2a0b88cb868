"""Connection tests against loopback servers, where-used across workflows and MCP instances, delete warnings."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from studio.secrets import (
    ConnectionInUseError,
    SecretVault,
    create_connection,
    delete_connection,
    get_connection,
    list_connections,
)
from studio.secrets.checks import ANTHROPIC_VERSION, check_connection, last_check, models_url
from studio.secrets.oauth import create_oauth_connection, sign_in
from studio.secrets.usage import link_connection, unlink_connection, where_used
from studio.store import Store
from tests.conftest import build_workflow, for_each_step, lua_step
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.oauth_server import FakeOAuthServer, oauth_server
from tests.fakes.openai_server import FakeOpenAIServer, openai_server
from tests.secrets.keyring_backends import MemoryKeyring

KEY = "sk-check-canary-Pz81Qw"


@pytest.fixture
def vault(memory_keyring: MemoryKeyring) -> SecretVault:
    return SecretVault("local", memory_keyring)


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key=KEY) as server:
        yield server


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def follow_in_browser(url: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


# -- connection tests -----------------------------------------------------------------------------


async def test_llm_key_works(store: Store, vault: SecretVault, llm_server: FakeOpenAIServer) -> None:
    create_connection(store, vault, "OpenAI", "api_key", provider="openai", base_url=llm_server.base_url, secret=KEY)

    result = await check_connection(store, vault, "OpenAI")

    assert result.ok
    assert result.status_code == 200
    assert f"{llm_server.base_url}/models" in result.reason
    assert llm_server.requests[-1].path == "/v1/models"


@pytest.mark.parametrize(("key", "verdict"), [(KEY, "works"), ("sk-ant-wrong-canary-5Jx", "rejected")])
async def test_anthropic_key_checked(store: Store, vault: SecretVault, key: str, verdict: str) -> None:
    with anthropic_server(api_key=KEY) as server:
        create_connection(
            store, vault, "Claude", "api_key", provider="anthropic", base_url=server.base_url, secret=key
        )

        result = await check_connection(store, vault, "Claude")
        request = server.requests[-1]

    assert result.verdict == verdict
    assert request.path == "/v1/models"
    assert request.headers["x-api-key"] == key
    assert "anthropic-version" in request.headers
    assert key not in result.reason


async def test_wrong_llm_key_rejected(store: Store, vault: SecretVault, llm_server: FakeOpenAIServer) -> None:
    wrong = "sk-wrong-canary-7Hq2"
    connection = create_connection(
        store, vault, "OpenAI", "api_key", provider="openai", base_url=llm_server.base_url, secret=wrong
    )

    result = await check_connection(store, vault, connection.id)

    assert result.verdict == "rejected"
    assert result.status_code == 401
    assert "rotate the secret" in result.reason
    assert wrong not in result.reason
    saved = last_check(store, connection.id)
    assert saved is not None
    assert saved.verdict == "rejected"


async def test_bearer_with_test_url(store: Store, vault: SecretVault, llm_server: FakeOpenAIServer) -> None:
    create_connection(
        store,
        vault,
        "Gateway",
        "bearer",
        secret=KEY,
        settings={"test_url": f"{llm_server.base_url}/models"},
    )

    result = await check_connection(store, vault, "Gateway")

    assert result.verdict == "works"
    assert llm_server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_missing_test_url_reported(store: Store, vault: SecretVault, llm_server: FakeOpenAIServer) -> None:
    create_connection(
        store, vault, "Gateway", "bearer", secret=KEY, settings={"test_url": f"{llm_server.base_url}/nothing-here"}
    )

    result = await check_connection(store, vault, "Gateway")

    assert result.verdict == "misconfigured"
    assert "HTTP 404" in result.reason


async def test_unreachable_server(store: Store, vault: SecretVault) -> None:
    url = closed_port_url()
    create_connection(store, vault, "Gone", "api_key", provider="openai", base_url=url, secret=KEY)

    result = await check_connection(store, vault, "Gone")

    assert result.verdict == "unreachable"
    assert url in result.reason
    assert "check the URL" in result.reason


async def test_connection_without_url(store: Store, vault: SecretVault) -> None:
    create_connection(store, vault, "Bare", "bearer", secret=KEY)

    result = await check_connection(store, vault, "Bare")

    assert result.verdict == "misconfigured"
    assert "settings.test_url" in result.reason


async def signed_in_oauth(store: Store, vault: SecretVault, server: FakeOAuthServer) -> str:
    client = server.add_client()
    connection = create_oauth_connection(
        store,
        vault,
        "OAuth API",
        authorization_endpoint=f"{server.base_url}/authorize",
        token_endpoint=f"{server.base_url}/token",
        client_id=client.client_id,
    )
    await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    return connection.id


async def test_oauth_checked_by_introspection(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    connection_id = await signed_in_oauth(store, vault, auth_server)
    # The static flow does not discover endpoints; the introspection endpoint is set as discovery would.
    from studio.secrets.oauth import _save_state

    _save_state(store, connection_id, introspection_endpoint=f"{auth_server.base_url}/introspect")

    result = await check_connection(store, vault, connection_id)

    assert result.ok
    assert "reports the token active" in result.reason
    assert auth_server.token_requests("refresh_token") == []


async def test_oauth_checked_by_refresh(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    connection_id = await signed_in_oauth(store, vault, auth_server)

    result = await check_connection(store, vault, connection_id)

    assert result.ok
    assert "renewed" in result.reason
    assert len(auth_server.token_requests("refresh_token")) == 1


async def test_oauth_refused_refresh_verdict(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    connection_id = await signed_in_oauth(store, vault, auth_server)
    auth_server.refuse_refresh = True

    result = await check_connection(store, vault, connection_id)

    assert result.verdict == "expired"
    assert "sign in again" in result.reason


async def test_oauth_not_signed_in_verdict(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    create_oauth_connection(
        store,
        vault,
        "Fresh",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id="c",
    )

    result = await check_connection(store, vault, "Fresh")

    assert result.verdict == "not signed in"
    assert "not signed in" in result.reason


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:9", "http://127.0.0.1:9/", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/api"]
)
def test_models_url_matches_engine(provider: Any, base_url: str) -> None:
    from studio.engine.executors.llm_types import LlmEndpoint

    assert models_url(provider, base_url) == LlmEndpoint(provider=provider, base_url=base_url).models_url


def test_anthropic_version_matches_engine() -> None:
    from studio.engine.executors.llm_types import DEFAULT_ANTHROPIC_VERSION

    assert ANTHROPIC_VERSION == DEFAULT_ANTHROPIC_VERSION


# -- where used -----------------------------------------------------------------------------------


def llm_step(step_id: str, connection_id: str) -> dict[str, Any]:
    return {"id": step_id, "type": "llm_call", "config": {"connection_id": connection_id, "prompt": "hi"}}


def test_where_used_lists_workflows_and_instances(store: Store, vault: SecretVault) -> None:
    connection = create_connection(store, vault, "Shared", "bearer", secret=KEY)
    other = create_connection(store, vault, "Other", "bearer", secret=KEY + "x")
    store.publish_workflow(build_workflow([llm_step("summarise", connection.id)], name="Report"))
    nested = for_each_step("loop", [1, 2], [llm_step("inner", connection.id)])
    store.save_draft(build_workflow([lua_step("first", "return 1"), nested], name="Batch"))
    store.save_draft(build_workflow([llm_step("elsewhere", other.id)], name="Unrelated"))
    instance_id = store.add_mcp_instance(
        name="GitHub", transport="stdio", command="github-mcp", env={"GITHUB_TOKEN": {"connection_id": connection.id}}
    )

    usages = where_used(store, connection.id)

    described = sorted(usage.describe() for usage in usages)
    assert len(usages) == 3
    assert "workflow 'Report' (version 1, steps summarise)" in described
    assert "workflow 'Batch' (draft, steps inner)" in described
    instance = next(usage for usage in usages if usage.kind == "mcp_instance")
    assert instance.owner_id == instance_id
    assert instance.owner_name == "GitHub"
    assert "env" in instance.detail


def test_links_listed_and_removed(store: Store, vault: SecretVault) -> None:
    connection = create_connection(store, vault, "Shared", "bearer", secret=KEY)
    link_connection(store, connection.id, "mcp_instance", "inst-1", "Remote tools", {"header": "Authorization"})

    (usage,) = where_used(store, connection.id)
    assert usage.kind == "mcp_instance"
    assert usage.describe() == "MCP instance 'Remote tools' (header Authorization)"

    unlink_connection(store, connection.id, "mcp_instance", "inst-1")
    assert where_used(store, connection.id) == []


def test_delete_warns_about_instance_use(store: Store, vault: SecretVault, memory_keyring: MemoryKeyring) -> None:
    connection = create_connection(store, vault, "Shared", "bearer", secret=KEY)
    link_connection(store, connection.id, "mcp_instance", "inst-1", "Remote tools")

    with pytest.raises(ConnectionInUseError, match="MCP instance 'Remote tools'") as raised:
        delete_connection(store, vault, connection.id)

    assert [usage.owner_id for usage in raised.value.usages] == ["inst-1"]
    assert get_connection(store, connection.id) == connection
    delete_connection(store, vault, connection.id, force=True)
    assert list_connections(store) == []
    assert memory_keyring.values == {}
    assert where_used(store, connection.id) == []


async def test_delete_oauth_connection_removes_metadata(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, memory_keyring: MemoryKeyring
) -> None:
    from studio.secrets.oauth import get_oauth_state

    connection_id = await signed_in_oauth(store, vault, auth_server)
    await check_connection(store, vault, connection_id)

    delete_connection(store, vault, connection_id)

    assert get_oauth_state(store, connection_id) is None
    assert last_check(store, connection_id) is None
    assert memory_keyring.values == {}


def test_where_used_reads_instance_bindings(store: Store, vault: SecretVault) -> None:
    from studio.mcp.instances import bind, create_instance

    connection = create_connection(store, vault, "GitHub token", "bearer", secret=KEY)
    instance = create_instance(store, "builtin:studio-tools", name="tools")
    bind(store, instance.id, "env", "GITHUB_TOKEN", connection.id)
    bind(store, instance.id, "header", "Authorization", connection.id)

    usages = where_used(store, connection.id)

    assert sorted(usage.describe() for usage in usages) == [
        "MCP instance 'tools' (environment variable GITHUB_TOKEN)",
        "MCP instance 'tools' (header Authorization)",
    ]
    with pytest.raises(ConnectionInUseError, match="MCP instance 'tools'"):
        delete_connection(store, vault, connection.id)
