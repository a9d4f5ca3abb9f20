"""TLS options as Celery names them, read the same way by every engine, and a refused TLS
handshake explained with the setting that fixes it.

Pure logic: imports the stdlib ``ssl`` only. The Redis engines spell the keys with an
``ssl_`` prefix (``ssl_ca_certs``), the RabbitMQ engine without (``ca_certs``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

logger = logging.getLogger("celeriac.tls")

# The spellings Celery accepts for a certificate requirement (its constants' names, and
# redis-py's lower-case words, as in ``rediss://...?ssl_cert_reqs=required``).
_VERIFY_MODES = {
    "CERT_REQUIRED": ssl.CERT_REQUIRED,
    "CERT_OPTIONAL": ssl.CERT_OPTIONAL,
    "CERT_NONE": ssl.CERT_NONE,
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}
_CODES = frozenset(mode.value for mode in ssl.VerifyMode)


def verify_mode(value: Any, option: str) -> ssl.VerifyMode:
    """``ssl.CERT_*`` from a constant or its name; a clear error for anything else."""
    if isinstance(value, str) and value in _VERIFY_MODES:
        return _VERIFY_MODES[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in _CODES:
        return ssl.VerifyMode(value)
    raise ImproperlyConfigured(
        f"{option} is {value!r}: use ssl.CERT_REQUIRED (the default: the server must show "
        f"a certificate a trusted CA signed), ssl.CERT_OPTIONAL or ssl.CERT_NONE, or their "
        f"names ('CERT_REQUIRED', 'required', ...)"
    )


def check_files(options: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Refuse now, not at the first connection, a certificate or key file that cannot be
    read: the error names the option, where it was given and the path."""
    for key in keys:
        path = options.get(key)
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except (OSError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"{where} has {key}={path!r}, which cannot be read ({exc}): give the path "
                f"of a PEM file this process may read"
            ) from exc


def warn_if_unverified(mode: ssl.VerifyMode, what: str) -> None:
    """Say once, when the engine is built, that the server's identity goes unchecked."""
    if mode == ssl.CERT_REQUIRED:
        return
    logger.warning(
        "TLS to the %s does not verify the server's certificate (%s): anyone between here "
        "and the server can read and change the traffic. Give the CA instead and leave the "
        "certificate requirement at CERT_REQUIRED.",
        what,
        mode.name,
    )


def _cause(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The error of one of ``kinds`` that a driver error was raised from, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    found = _cause(exc, (ssl.SSLError,))
    return found if isinstance(found, ssl.SSLError) else None


def client_certificate_hint(exc: BaseException, *, setting: str, prefix: str) -> str:
    """For a TLS client with no certificate of its own whose connection was cut at once:
    a sentence naming the likely fix, else "". (Under TLS 1.3 a server that asks for client
    certificates closes the connection after the handshake, and the client often sees
    only an EOF or a reset rather than the server's alert.)"""
    if _cause(exc, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)) is None:
        return ""
    return (
        f" If the server asks for client certificates, give one with {setting}="
        f"{{'{prefix}certfile': '/path/to/client.crt', '{prefix}keyfile': '/path/to/client.key'}}."
    )


def _text(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    return str(exc.reason or exc).lower().replace("_", " ")


def refused_handshake(
    exc: BaseException, *, what: str, url: str, setting: str, prefix: str
) -> str | None:
    """The message for a TLS handshake that failed on a certificate, naming the option
    that fixes it (``prefix`` + ``ca_certs``/``certfile``/``keyfile``); None when ``exc``
    is not such a failure (retrying may then help, and the caller words it)."""
    error = _ssl_error(exc)
    if error is None:
        return None
    if isinstance(error, ssl.SSLCertVerificationError):
        if "mismatch" in _text(error) or "hostname" in _text(error):
            return (
                f"the TLS certificate of the {what} at {url} was not issued for that host "
                f"({_text(error)}): connect with a host name (or IP address) the "
                f"certificate holds, or have the server's certificate issued for this one"
            )
        return (
            f"the TLS certificate of the {what} at {url} is not trusted "
            f"({_text(error)}): name the CA that signed it with "
            f"{setting}={{'{prefix}ca_certs': '/path/to/ca.pem'}}"
        )
    if "certificate" in _text(error) or "unknown ca" in _text(error):
        return (
            f"the {what} at {url} refused this client's TLS certificate ({_text(error)}): "
            f"it asks for a client certificate its CA signed. Give one with "
            f"{setting}={{'{prefix}certfile': '/path/to/client.crt', "
            f"'{prefix}keyfile': '/path/to/client.key'}}"
        )
    return None
