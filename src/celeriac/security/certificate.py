"""X.509 certificates and the store a worker verifies signatures against (``auth``).

As Celery's: RSA certificates only, named by ``"<issuer> <serial number>"``; a store is
every file a glob (or a directory) names, an expired certificate refused. Needs the
``cryptography`` package (``celeriac[security]``); imports leaves only.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from collections.abc import Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import HashAlgorithm
from cryptography.x509 import load_pem_x509_certificate

from celeriac.exceptions import ImproperlyConfigured, SecurityError


def pss(digest: HashAlgorithm) -> padding.PSS:
    """The padding Celery signs with: PSS, MGF1 on the digest, the longest salt."""
    return padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH)


class Certificate:
    """An X.509 certificate (PEM) whose RSA public key verifies signatures."""

    def __init__(self, cert: str | bytes) -> None:
        data = cert.encode("utf-8") if isinstance(cert, str) else cert
        try:
            self._cert = load_pem_x509_certificate(data)
        except ValueError as exc:
            raise SecurityError(f"Invalid certificate: {exc!r}") from exc
        key = self._cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SecurityError("Invalid certificate: only RSA certificates are supported")
        self._key = key

    def has_expired(self) -> bool:
        return dt.datetime.now(dt.timezone.utc) >= self._cert.not_valid_after_utc

    def get_pubkey(self) -> rsa.RSAPublicKey:
        return self._key

    def get_serial_number(self) -> int:
        return int(self._cert.serial_number)

    def get_issuer(self) -> str:
        return " ".join(str(attribute.value) for attribute in self._cert.issuer)

    def get_id(self) -> str:
        """Issuer and serial number: together they name one certificate."""
        return f"{self.get_issuer()} {self.get_serial_number()}"

    def verify(self, data: bytes, signature: bytes, digest: HashAlgorithm) -> None:
        """Raise ``SecurityError`` unless ``signature`` of ``data`` is this key's."""
        if self.has_expired():
            raise SecurityError(f"Expired certificate: {self.get_id()!r}")
        try:
            self._key.verify(signature, data, pss(digest), digest)
        except InvalidSignature:
            raise SecurityError(
                f"Bad signature: not made by the key of {self.get_id()!r} over this message"
            ) from None


class CertStore:
    """Certificates by id."""

    def __init__(self) -> None:
        self._certs: dict[str, Certificate] = {}

    def itercerts(self) -> Iterator[Certificate]:
        yield from self._certs.values()

    def __getitem__(self, cert_id: str) -> Certificate:
        try:
            return self._certs[cert_id]
        except KeyError:
            raise SecurityError(
                f"Unknown certificate: {cert_id!r} is not in security_cert_store"
            ) from None

    def add_cert(self, cert: Certificate) -> None:
        cert_id = cert.get_id()
        if cert_id in self._certs:
            raise SecurityError(f"Duplicate certificate: {cert_id!r}")
        self._certs[cert_id] = cert


class FSCertStore(CertStore):
    """Every certificate file ``path`` names: a glob, or a directory (all its files)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        pattern = os.path.join(path, "*") if os.path.isdir(path) else path
        files = sorted(glob.glob(pattern))
        if not files:
            raise ImproperlyConfigured(
                f"security_cert_store {path!r} names no certificate file: give a glob such "
                f"as '/etc/ssl/certs/*.pem' or a directory of PEM certificates"
            )
        for name in files:
            with open(name, "rb") as file:
                data = file.read()
            try:
                cert = Certificate(data)
            except SecurityError as exc:  # name the file: a store glob can catch a key too
                raise SecurityError(f"{exc} ({name}, in security_cert_store)") from exc
            if cert.has_expired():
                raise SecurityError(f"Expired certificate: {cert.get_id()!r} ({name})")
            self.add_cert(cert)
