"""OAuth discovery for remote MCP servers: protected resource metadata, authorization server metadata, registration.

The steps follow the MCP authorization specification (its authorization server discovery and client
registration pages on modelcontextprotocol.io) and the RFCs it builds on:

1. An unauthenticated request to the MCP endpoint returns 401 with ``WWW-Authenticate: Bearer
   resource_metadata="<url>"`` (and maybe ``scope="..."``). Without that parameter the client tries
   ``/.well-known/oauth-protected-resource/<path>`` and then ``/.well-known/oauth-protected-resource``
   on the server's origin (RFC 9728).
2. The protected resource metadata names the authorization servers; the first one is used. Its metadata
   comes from ``/.well-known/oauth-authorization-server`` (RFC 8414) or ``openid-configuration``, with
   the issuer's path inserted after or appended to the well-known segment.
3. The server must list ``S256`` in ``code_challenge_methods_supported``; otherwise the flow stops.
4. Unless the user gave a pre-registered client id, the client registers itself at
   ``registration_endpoint`` (RFC 7591) as a public client with the loopback redirect URI. The MCP
   server URL goes out as the ``resource`` parameter (RFC 8707).

NOTE: Client ID Metadata Documents, which the specification ranks before dynamic registration, are not
supported, because they need the client's metadata at an HTTPS URL that a desktop app does not host.
An authorization server that offers only those needs a pre-registered client id.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from studio.secrets.oauth_flow import HTTP_TIMEOUT_S, OAuthError

logger = logging.getLogger(__name__)

CLIENT_NAME = "Workflow Studio"
_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class DiscoveryError(OAuthError):
    """The MCP server or its authorization server did not publish what the sign-in needs."""


@dataclass(frozen=True)
class McpAuthorization:
    """Discovery results: the endpoints, the resource indicator and the scopes to request."""

    resource: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None
    introspection_endpoint: str | None
    scopes: tuple[str, ...]


def parse_www_authenticate(header: str) -> dict[str, str]:
    """Return the auth parameters of a ``Bearer`` challenge (keys lower-cased); empty when there is none."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {match[0].lower(): match[1] if match[1] or not match[2] else match[2] for match in _AUTH_PARAM.findall(rest)}


def canonical_resource(url: str) -> str:
    """Return the MCP server URL as a resource indicator: lower-case scheme and host, no fragment or query."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


async def discover(server_url: str, http: httpx.AsyncClient | None = None) -> McpAuthorization:
    """Run discovery steps 1-3 against ``server_url``.

    Raises:
        DiscoveryError: the server needs no token, or a metadata document is missing or invalid.
    """
    if http is None:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            return await discover(server_url, client)
    challenge = await _challenge(server_url, http)
    resource_metadata = await _protected_resource_metadata(server_url, challenge.get("resource_metadata"), http)
    resource = str(resource_metadata.get("resource") or canonical_resource(server_url))
    _check_resource(server_url, resource)
    servers = resource_metadata.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise DiscoveryError(
            f"the protected resource metadata of {server_url} lists no authorization_servers; the server is "
            "misconfigured, ask its operator"
        )
    metadata = await _authorization_server_metadata(servers[0], http)
    methods = metadata.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise DiscoveryError(
            f"the authorization server {servers[0]} does not declare PKCE S256 support "
            "(code_challenge_methods_supported), so sign-in stops as the MCP specification requires"
        )
    scope = challenge.get("scope")
    supported = resource_metadata.get("scopes_supported")
    scopes = tuple(scope.split()) if scope else tuple(s for s in supported or () if isinstance(s, str))
    return McpAuthorization(
        resource=resource,
        issuer=str(metadata.get("issuer") or servers[0]),
        authorization_endpoint=_required_url(metadata, "authorization_endpoint", servers[0]),
        token_endpoint=_required_url(metadata, "token_endpoint", servers[0]),
        registration_endpoint=_optional_str(metadata.get("registration_endpoint")),
        introspection_endpoint=_optional_str(metadata.get("introspection_endpoint")),
        scopes=scopes,
    )


def _check_resource(server_url: str, resource: str) -> None:
    # A server may only ask for tokens for itself, so one server cannot collect tokens meant for another.
    # The resource must have the server URL's origin, and its path must be the server URL's path or a prefix.
    expected = urlsplit(canonical_resource(server_url))
    claimed = urlsplit(canonical_resource(resource))
    same_origin = (claimed.scheme, claimed.netloc) == (expected.scheme, expected.netloc)
    claimed_path = claimed.path.rstrip("/")
    if not same_origin or not (expected.path.rstrip("/") + "/").startswith(claimed_path + "/"):
        raise DiscoveryError(
            f"the protected resource metadata of {server_url} names another resource, {resource}; sign-in stops "
            "so that no token for another server is requested. Check the server URL"
        )


async def register_client(
    authorization: McpAuthorization, redirect_uri: str, http: httpx.AsyncClient | None = None
) -> tuple[str, str | None]:
    """Register a public client with ``redirect_uri`` (RFC 7591); return its client id and client secret.

    Raises:
        DiscoveryError: no registration endpoint, or the server rejected the registration.
    """
    if authorization.registration_endpoint is None:
        raise DiscoveryError(
            f"the authorization server {authorization.issuer} offers no dynamic client registration; register "
            "a client there by hand and create the connection with its client id"
        )
    body: dict[str, Any] = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    if authorization.scopes:
        body["scope"] = " ".join(authorization.scopes)
    response = await _send(http, "POST", authorization.registration_endpoint, json=body)
    data = _json_object(response)
    if response.status_code not in (200, 201) or not isinstance(data.get("client_id"), str):
        reason = data.get("error_description") or data.get("error") or f"HTTP {response.status_code}"
        raise DiscoveryError(
            f"client registration at {authorization.registration_endpoint} failed: {reason}; try again later or "
            "register a client by hand"
        )
    logger.info("Registered OAuth client at %s", authorization.registration_endpoint)
    secret = data.get("client_secret")
    return data["client_id"], secret if isinstance(secret, str) and secret else None


async def _challenge(server_url: str, http: httpx.AsyncClient) -> dict[str, str]:
    # Send an initialize request without a token. An MCP server that requires authorization responds with 401.
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    response = await _send(http, "POST", server_url, json=body, headers=headers)
    if response.status_code != 401:
        raise DiscoveryError(
            f"the MCP server {server_url} responded with HTTP {response.status_code} to a request without a token, so it "
            "does not ask for OAuth sign-in; use a connection of kind bearer or api_key, or none"
        )
    return parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))


async def _protected_resource_metadata(
    server_url: str, announced: str | None, http: httpx.AsyncClient
) -> dict[str, Any]:
    parts = urlsplit(server_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    candidates = [announced] if announced else []
    if path:
        candidates.append(f"{origin}/.well-known/oauth-protected-resource{path}")
    candidates.append(f"{origin}/.well-known/oauth-protected-resource")
    return await _first_document(candidates, http, f"protected resource metadata of {server_url}")


async def _authorization_server_metadata(issuer: str, http: httpx.AsyncClient) -> dict[str, Any]:
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if path:
        candidates = [
            f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
            f"{origin}{path}/.well-known/openid-configuration",
        ]
    else:
        candidates = [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]
    return await _first_document(candidates, http, f"authorization server metadata of {issuer}")


async def _first_document(candidates: list[str], http: httpx.AsyncClient, description: str) -> dict[str, Any]:
    for url in candidates:
        response = await _send(http, "GET", url, headers={"Accept": "application/json"})
        if response.status_code == 200:
            document = _json_object(response)
            if document:
                logger.debug("Read the %s from %s", description, url)
                return document
    raise DiscoveryError(f"the {description} was not found (tried {', '.join(candidates)}); the server may not support OAuth")


async def _send(http: httpx.AsyncClient | None, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        if http is None:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
                return await client.request(method, url, **kwargs)
        return await http.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise DiscoveryError(f"could not reach {url}: {type(error).__name__}: {error}; check the URL") from None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _required_url(metadata: dict[str, Any], key: str, issuer: str) -> str:
    value = metadata.get(key)
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise DiscoveryError(f"the authorization server metadata of {issuer} has no valid {key}")
    return value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
