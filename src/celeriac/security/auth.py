"""Celery's ``auth`` serializer: task messages signed with an RSA key, verified against the
certificates of ``security_cert_store``.

A call sent with ``serializer='auth'`` has its body written by the inner serializer
(``setup_security(serializer=...)``, json by default), then signed; on the wire its content
type is ``application/data``, and the inner one travels, signed, in the signature header.
Needs ``cryptography`` (``celeriac[security]``); imports ``messages`` and leaves only.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes

from celeriac.exceptions import ImproperlyConfigured, SecurityError
from celeriac.messages.envelope import Message
from celeriac.messages.serializers import AUTH_CONTENT_TYPE, registry, resolve_accept
from celeriac.security.certificate import Certificate, CertStore, FSCertStore
from celeriac.security.key import PrivateKey
from celeriac.security.signing import (
    HEADER,
    Signer,
    Verified,
    as_received,
    decode_b64,
    signature_field,
    signed_bytes,
    without_signature,
)

_DIGESTS = ("sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")


def get_digest_algorithm(digest: str = "sha256") -> hashes.HashAlgorithm:
    """The hash named by ``security_digest`` (``sha256``, ``sha512``, ...)."""
    name = str(digest).lower().replace("-", "_")
    if name not in _DIGESTS:
        raise ImproperlyConfigured(
            f"security_digest {digest!r} is not a digest for signing; use one of: "
            f"{', '.join(_DIGESTS)}"
        )
    algorithm: hashes.HashAlgorithm = getattr(hashes, name.upper())()
    return algorithm


class CertificateSigner(Signer):
    """Signs ``auth`` calls with ``key`` (named by ``cert``); verifies against ``store``.

    A worker reads a verified message's body if it is in ``serializer`` or one of
    ``trusted`` (serializer names); a process that only sends needs no store, one that
    only receives needs no key."""

    alg = "x509"

    def __init__(
        self,
        key: PrivateKey | None,
        cert: Certificate | None,
        store: CertStore | None,
        digest: str = "sha256",
        serializer: str = "json",
        trusted: Iterable[str] = (),
    ) -> None:
        if serializer not in registry or serializer == "auth":
            known = ", ".join(name for name in sorted(registry) if name != "auth")
            raise ImproperlyConfigured(
                f"setup_security(serializer={serializer!r}): the body of a signed message "
                f"is written by one of: {known}"
            )
        self.key, self.cert, self.store = key, cert, store
        self.digest_name = digest
        self.digest = get_digest_algorithm(digest)
        self.serializer = serializer
        self.trusted = resolve_accept([serializer, *trusted]) - {AUTH_CONTENT_TYPE}

    def body_serializer(self, serializer: str) -> str:
        return self.serializer if serializer == "auth" else serializer

    def sign(self, message: Message, serializer: str) -> Message:
        if serializer != "auth":  # as in Celery: only the auth serializer signs
            return message
        if self.key is None or self.cert is None:
            raise SecurityError("signing needs security_key and security_certificate")
        headers, properties = as_received(message)
        inner_type, inner_encoding = message.content_type, message.content_encoding
        data = signed_bytes(headers, properties, inner_type, inner_encoding, message.body)
        signature = base64.b64encode(self.key.sign(data, self.digest)).decode("ascii")
        field = {
            "alg": self.alg, "signer": self.cert.get_id(), "sig": signature,
            "ct": inner_type, "ce": inner_encoding,
        }  # fmt: skip
        return Message(
            {**message.headers, HEADER: field}, message.body, AUTH_CONTENT_TYPE, "utf-8",
            message.properties,
        )  # fmt: skip

    def verify(self, message: Message) -> Verified:
        if self.store is None:
            raise SecurityError("verifying needs security_cert_store")
        field = signature_field(message, self.alg)
        inner_type, inner_encoding = field.get("ct"), field.get("ce")
        if not inner_type or not inner_encoding:
            raise SecurityError(f"message {message.id}: the signature names no content type")
        signature = decode_b64(field.get("sig"), "signature")
        data = signed_bytes(
            message.headers, message.properties, inner_type, inner_encoding, message.body
        )
        self.store[field.get("signer", "")].verify(data, signature, self.digest)
        inner = without_signature(message, content_type=inner_type, content_encoding=inner_encoding)
        return Verified(inner, self.trusted)


def load_certificate_signer(
    key: str,
    key_password: str | bytes | None,
    cert: str,
    store: str,
    digest: str,
    serializer: str,
    trusted: Iterable[str] = (),
) -> CertificateSigner:
    """The signer of ``setup_security``: the key and certificate read from their files."""
    return CertificateSigner(
        PrivateKey(_read(key, "security_key"), key_password),
        Certificate(_read(cert, "security_certificate")),
        FSCertStore(store),
        digest,
        serializer,
        trusted,
    )


def _read(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read {setting} {path!r}: {exc.strerror}") from exc
