"""The private key that signs task messages (``auth``): RSA in PEM, maybe encrypted.

Needs the ``cryptography`` package (``celeriac[security]``); imports leaves only.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.hashes import HashAlgorithm

from celeriac.exceptions import SecurityError
from celeriac.security.certificate import pss


class PrivateKey:
    def __init__(self, key: str | bytes, password: str | bytes | None = None) -> None:
        data = key.encode("utf-8") if isinstance(key, str) else key
        secret = password.encode("utf-8") if isinstance(password, str) else password
        try:
            loaded = serialization.load_pem_private_key(data, password=secret)
        except (ValueError, TypeError) as exc:  # TypeError: a password missing or not needed
            raise SecurityError(
                f"Invalid private key: {exc} (check security_key_password)"
            ) from exc
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise SecurityError("Invalid private key: only RSA keys are supported")
        self._key = loaded

    def sign(self, data: bytes, digest: HashAlgorithm) -> bytes:
        return self._key.sign(data, pss(digest), digest)
