"""The app's message signer: Celery's ``setup_security`` (X.509, the ``auth`` serializer)
or HMAC-SHA256 from the ``security_keys`` setting; ``None`` when messages are not signed.

The producer signs through it and the worker verifies through it; the signers themselves
(``celeriac.security``) never read settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from celeriac.exceptions import ImproperlyConfigured
from celeriac.messages.serializers import registry, resolve_accept

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac
    from celeriac.security.signing import Signer

_CERTIFICATE = "_celeriac_certificate_signer"  # set by setup_security
_HMAC = "_celeriac_hmac_signer"  # (security_keys, signer), rebuilt when the keys change

NO_CRYPTOGRAPHY = (
    "the auth serializer needs the cryptography package: pip install 'celeriac[security]'"
)
SERIALIZERS_NOT_AUTH = (
    "setup_security() needs task_serializer='auth' and accept_content=['auth'] (now "
    "{serializer!r} and {accept!r}): set both, so that every call is signed and a worker "
    "reads nothing unsigned"
)


def setup_security(
    app: Celeriac,
    allowed_serializers: Iterable[str] | None = None,
    key: str | None = None,
    key_password: str | bytes | None = None,
    cert: str | None = None,
    store: str | None = None,
    digest: str | None = None,
    serializer: str = "json",
) -> None:
    """Sign task calls with ``key`` and verify received ones against ``store``; each
    argument left out is read from its ``security_*`` setting."""
    conf = app.conf
    accept = list(conf.accept_content)
    if conf.task_serializer != "auth" or accept != ["auth"]:
        raise ImproperlyConfigured(
            SERIALIZERS_NOT_AUTH.format(serializer=conf.task_serializer, accept=accept)
        )
    if conf.security_keys:
        raise ImproperlyConfigured(
            "security_keys (HMAC signing) and setup_security() (certificates) are two ways "
            "to sign messages: use one, and unset security_keys for setup_security()"
        )
    paths = {
        "security_key": key or conf.security_key,
        "security_certificate": cert or conf.security_certificate,
        "security_cert_store": store or conf.security_cert_store,
    }
    missing = [name for name, value in paths.items() if not value]
    if missing:
        raise ImproperlyConfigured(
            f"setup_security() needs {', '.join(missing)}: set the setting, or pass "
            f"key=, cert= and store= (a private key file, its certificate file, and a "
            f"glob of the certificates whose signatures are accepted)"
        )
    trusted = _checked(allowed_serializers)
    try:
        from celeriac.security import auth  # the optional cryptography package
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(NO_CRYPTOGRAPHY) from exc
    signer = auth.load_certificate_signer(
        str(paths["security_key"]),
        key_password or conf.security_key_password,
        str(paths["security_certificate"]),
        str(paths["security_cert_store"]),
        digest or conf.security_digest,
        serializer,
        trusted,
    )
    app.__dict__[_CERTIFICATE] = signer


def _checked(allowed: Iterable[str] | None) -> list[str]:
    """``allowed_serializers``: names (or content types) of known serializers."""
    if allowed is None:
        return []
    if isinstance(allowed, str):
        allowed = [allowed]
    names = [str(name) for name in allowed]
    try:
        resolve_accept(names)
    except Exception as exc:
        known = ", ".join(sorted(registry))
        raise ImproperlyConfigured(f"allowed_serializers: {exc}; known: {known}") from exc
    return names


def signer_of(app: Celeriac) -> Signer | None:
    """The app's signer, or None when its messages are not signed."""
    certificate: Signer | None = app.__dict__.get(_CERTIFICATE)
    keys = app.conf.security_keys
    if certificate is not None:
        if keys:
            raise ImproperlyConfigured(
                "security_keys was set after setup_security(): use one way to sign messages"
            )
        return certificate
    if not keys:
        return None
    cached: tuple[tuple[str | bytes, ...], Signer] | None = app.__dict__.get(_HMAC)
    if cached is None or cached[0] != tuple(keys):
        from celeriac.security.signing import HmacSigner  # (signing apps only)

        cached = (tuple(keys), HmacSigner(keys))
        app.__dict__[_HMAC] = cached
    return cached[1]
