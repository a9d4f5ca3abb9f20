"""Who may use the dashboard, and what every response carries.

Runtime layer (dashboard); stdlib only. ``Auth`` checks HTTP basic credentials against
PBKDF2-SHA256 password hashes (``hash_password``; a plain password is refused) or a bearer
token (kept as its SHA-256 digest). ``SecurityMiddleware`` (pure ASGI, so server-sent
events stream through) answers 401 without credentials, refuses a mutating request without
the CSRF token of its user (a bearer token is not sent by a browser on its own, so those
requests need none), optionally refuses unexpected ``Host`` headers (DNS rebinding), and
sets the security headers on every response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: str = "") -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<digest>`` for ``--basic-auth user:<this>``."""
    if not password:
        raise ValueError("the password is empty: choose one")
    salt = salt or secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    algorithm, iterations, salt, _ = encoded.split("$", 3)
    expected = hash_password(password, iterations=int(iterations), salt=salt)
    return algorithm == ALGORITHM and hmac.compare_digest(expected, encoded)


def parse_basic_auth(spec: str) -> dict[str, str]:
    """``user:HASH[,user2:HASH]`` -> ``{user: HASH}``; a plain password is refused."""
    users: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        user, sep, encoded = item.partition(":")
        if not sep or not user:
            raise ValueError(f"--basic-auth takes user:password-hash pairs, not {item!r}")
        parts = encoded.split("$")
        if len(parts) != 4 or parts[0] != ALGORITHM or not parts[1].isdigit():
            raise ValueError(
                f"--basic-auth wants the password of {user!r} hashed, not in plain text: "
                f"run 'celeriac dashboard --hash-password' and pass {user}:<the hash>"
            )
        users[user] = encoded
    if not users:
        raise ValueError("--basic-auth names no user: give user:password-hash")
    return users


@dataclass
class Auth:
    """The accepted credentials; with neither users nor a token, everyone is let in."""

    users: dict[str, str] = field(default_factory=dict)  # user -> password hash
    token_digest: str | None = None  # SHA-256 hex digest of the bearer token
    read_only: bool = False  # refuse every mutating action
    _verified: OrderedDict[str, str] = field(default_factory=OrderedDict, repr=False)

    @classmethod
    def from_token(cls, token: str, **kwargs: Any) -> Auth:
        if len(token) < 16:
            raise ValueError("the bearer token is too short: use at least 16 characters")
        return cls(token_digest=hashlib.sha256(token.encode()).hexdigest(), **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.token_digest)

    def identify(self, authorization: str) -> tuple[str, str] | None:
        """``(user, scheme)`` for valid credentials, else None."""
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token_digest:
            digest = hashlib.sha256(value.strip().encode()).hexdigest()
            return ("token", "bearer") if hmac.compare_digest(digest, self.token_digest) else None
        if scheme == "basic" and self.users:
            return self._basic(value.strip())
        return None

    def _basic(self, value: str) -> tuple[str, str] | None:
        # A verified header is remembered (by digest) so each request does not pay PBKDF2.
        key = hashlib.sha256(value.encode()).hexdigest()
        if key in self._verified:
            return self._verified[key], "basic"
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        encoded = self.users.get(user)
        if encoded is None or not check_password(password, encoded):
            return None
        self._verified[key] = user
        while len(self._verified) > 64:
            self._verified.popitem(last=False)
        return user, "basic"


class SecurityMiddleware:
    """Authentication, CSRF, allowed hosts and security headers around ``app``."""

    def __init__(self, app: ASGIApp, auth: Auth, allowed_hosts: Sequence[str] = ()) -> None:
        self.app, self.auth = app, auth
        self.allowed_hosts = {host.lower() for host in allowed_hosts}
        self.secret = secrets.token_bytes(32)  # CSRF tokens last as long as this process

    def csrf_token(self, user: str) -> str:
        return hmac.new(self.secret, f"csrf:{user}".encode(), hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope["headers"]}  # fmt: skip

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(key.encode(), value.encode()) for key, value in HEADERS.items()]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _respond(secured, *refusal)
            return
        await self.app(scope, receive, secured)

    def _refusal(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str]] | None:
        host = headers.get("host", "").lower()
        if self.allowed_hosts and _hostname(host) not in self.allowed_hosts:
            return 400, f"host {host!r} is not served here", {}
        user, scheme = "", ""
        if self.auth.enabled:
            found = self.auth.identify(headers.get("authorization", ""))
            if found is None:
                challenge = 'Basic realm="celeriac"' if self.auth.users else "Bearer"
                return 401, "authentication required", {"www-authenticate": challenge}
            user, scheme = found
        token = self.csrf_token(user)
        scope.setdefault("state", {}).update(user=user, csrf_token=token)
        if scope["method"] in SAFE_METHODS:
            return None
        if self.auth.read_only:
            return 403, "this dashboard is read-only", {}
        given = headers.get(CSRF_HEADER, "")
        if scheme != "bearer" and not hmac.compare_digest(given, token):
            return 403, "missing or wrong CSRF token (send it in the X-CSRF-Token header)", {}
        return None


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _respond(send: Send, status: int, error: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(key.encode(), value.encode()) for key, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


__all__ = ["Auth", "SecurityMiddleware", "check_password", "hash_password", "parse_basic_auth"]
