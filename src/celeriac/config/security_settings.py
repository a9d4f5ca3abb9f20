"""The ``security_*`` settings (message signing), declared here and added to
``settings.SETTINGS`` unchanged.

Pure data; imports nothing from celeriac. Each row is ``(name, default, types, doc,
extra)``, ``extra`` being ``Setting``'s other fields. The app hands them to its signer
(``app.setup_security()``, ``celeriac.app.signing``; docs/security.md).
"""

from __future__ import annotations

from typing import Any

SECURITY: list[tuple[str, Any, tuple[type, ...], str, dict[str, Any]]] = [
    (
        "security_key",
        None,
        (str,),
        "Path of the PEM RSA private key that signs task messages (`app.setup_security()`, "
        "the `auth` serializer; needs `celeriac[security]`).",
        {},
    ),
    ("security_key_password", None, (str, bytes), "Password of an encrypted `security_key`.", {}),
    (
        "security_certificate",
        None,
        (str,),
        "Path of the PEM X.509 certificate of `security_key`; its issuer and serial number "
        "name the signer in each message.",
        {},
    ),
    (
        "security_cert_store",
        None,
        (str,),
        "Glob (or directory) of the PEM certificates whose signatures a worker accepts, "
        "e.g. `/etc/ssl/certs/*.pem`; it must name at least one file.",
        {},
    ),
    ("security_digest", "sha256", (str,), "Hash the `auth` signatures use (RSA-PSS).", {}),
    (
        "security_keys",
        None,
        (list, tuple),
        "HMAC-SHA256 signing with shared keys (each 32 bytes or more), newest first: "
        "messages are signed with the first and accepted when any verifies; unsigned or "
        "tampered ones are dead-lettered (`bad_signature`). Unset: no HMAC signing.",
        {"ours": True},
    ),
]
