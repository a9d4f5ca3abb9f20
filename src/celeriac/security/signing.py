"""Signed task messages: the ``Signer`` seam, the bytes a signature covers, and HMAC-SHA256.

A signature covers a message's headers, properties, content type and encoding and body,
and travels in its ``signature`` header (left out of what it covers). ``HmacSigner`` signs
with the first of ``security_keys`` and accepts any of them; ``auth.CertificateSigner`` is
Celery's ``auth`` serializer. Pure logic: imports ``messages`` and leaves only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.exceptions import EncodeError, ImproperlyConfigured, SecurityError
from celeriac.messages.envelope import Message

#: The header a signature travels in.
HEADER = "signature"
# Names what the bytes are, so a signature made for anything else never verifies here.
_DOMAIN = b"celeriac signed message 1\n"
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Verified:
    """A message whose signature verified, as the worker decodes it (no signature header),
    and the content types it may be read in besides ``accept_content``."""

    message: Message
    trusted: frozenset[str] = frozenset()


class Signer(ABC):
    """Signs the task messages an app sends and verifies the ones its worker receives."""

    #: The ``alg`` a signature header of this signer names.
    alg: str = ""

    def body_serializer(self, serializer: str) -> str:
        """The serializer that writes the body of a call sent with ``serializer``."""
        return serializer

    @abstractmethod
    def sign(self, message: Message, serializer: str) -> Message:
        """``message`` as sent: signed (or not, for a signer that leaves it so)."""

    @abstractmethod
    def verify(self, message: Message) -> Verified:
        """The message to decode; raise ``SecurityError`` when it is unsigned or its
        signature does not verify."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def signed_bytes(
    headers: Mapping[str, Any],
    properties: Mapping[str, Any],
    content_type: str,
    content_encoding: str,
    body: bytes,
) -> bytes:
    """What a signature covers: everything the worker reads, the signature header aside."""
    meta = _canonical({
        "h": {key: value for key, value in headers.items() if key != HEADER},
        "p": properties, "ct": content_type, "ce": content_encoding,
    })  # fmt: skip
    return b"".join((_DOMAIN, len(meta).to_bytes(4, "big"), meta, body))


def as_received(message: Message) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headers and properties as a worker will read them back (JSON turns tuples into
    lists and keys into strings), so both sides sign the same bytes."""
    if HEADER in message.headers:
        raise EncodeError(
            f"header {HEADER!r} is reserved for message signing: rename your own header"
        )
    try:
        meta = json.loads(json.dumps([message.headers, message.properties]))
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"message headers cannot be signed: {exc}") from exc
    return meta[0], meta[1]


def signature_field(message: Message, alg: str) -> dict[str, str]:
    """The signature header, checked to be this signer's; ``SecurityError`` otherwise."""
    field = message.headers.get(HEADER)
    if field is None:
        raise SecurityError(f"message {message.id} is not signed (no {HEADER!r} header)")
    if not isinstance(field, dict) or not all(isinstance(v, str) for v in field.values()):
        raise SecurityError(f"message {message.id}: the {HEADER!r} header is not readable")
    if field.get("alg") != alg:
        raise SecurityError(
            f"message {message.id} is signed with {field.get('alg')!r}; this app verifies "
            f"{alg!r} signatures"
        )
    return field


def decode_b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode((text or "").encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SecurityError(f"the {what} in the {HEADER!r} header is not base64") from None


def without_signature(message: Message, **changes: Any) -> Message:
    """The message as the worker decodes it: the signature header left out."""
    headers = {key: value for key, value in message.headers.items() if key != HEADER}
    fields = {
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "body": message.body,
        **changes,
    }
    return Message(headers, properties=message.properties, **fields)


def _key_bytes(key: Any, position: int) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes):
        raise ImproperlyConfigured(
            f"security_keys[{position}] must be a str or bytes, not {type(key).__name__}"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ImproperlyConfigured(
            f"security_keys[{position}] is {len(key)} bytes; a signing key needs at least "
            f"{MIN_KEY_BYTES} (make one with: python -c 'import secrets; "
            f"print(secrets.token_hex(32))')"
        )
    return key


class HmacSigner(Signer):
    """HMAC-SHA256 with shared keys: signs with the first, accepts a signature by any, so
    a new key is put first and the old one dropped once no message signed with it is left."""

    alg = "hmac-sha256"

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, (str, bytes)) or not keys:
            raise ImproperlyConfigured(
                "security_keys must be a list of keys, the one to sign with first"
            )
        self._keys = [_key_bytes(key, position) for position, key in enumerate(keys)]

    def _mac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha256).digest()

    def sign(self, message: Message, serializer: str) -> Message:
        headers, properties = as_received(message)
        data = signed_bytes(
            headers, properties, message.content_type, message.content_encoding, message.body
        )
        signature = base64.b64encode(self._mac(self._keys[0], data)).decode("ascii")
        headers = {**message.headers, HEADER: {"alg": self.alg, "sig": signature}}
        return Message(
            headers, message.body, message.content_type, message.content_encoding,
            message.properties,
        )  # fmt: skip

    def verify(self, message: Message) -> Verified:
        field = signature_field(message, self.alg)
        signature = decode_b64(field.get("sig"), "signature")
        data = signed_bytes(
            message.headers, message.properties, message.content_type,
            message.content_encoding, message.body,
        )  # fmt: skip
        # Every key is tried, each in constant time: nothing tells which one came close.
        if any(hmac.compare_digest(self._mac(key, data), signature) for key in self._keys):
            return Verified(without_signature(message))
        raise SecurityError(
            f"bad signature on message {message.id}: no key in security_keys verifies it "
            f"(changed after it was signed, or signed with a key not listed)"
        )
