"""``sqlalchemy_url``: the relay's database URL from a Django ``DATABASES`` entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

_DRIVERS = {
    "django.db.backends.postgresql": "postgresql+psycopg",
    "django.db.backends.mysql": "mysql+pymysql",
    "django.db.backends.sqlite3": "sqlite",
}


def sqlalchemy_url(database: Mapping[str, Any]) -> str:
    """The SQLAlchemy URL of a ``DATABASES`` entry (PostgreSQL, MySQL/MariaDB, SQLite), for
    ``CELERY_OUTBOX_DATABASE_URL = sqlalchemy_url(DATABASES["default"])``."""
    engine = database.get("ENGINE", "")
    driver = _DRIVERS.get(engine)
    if driver is None:
        raise ValueError(
            f"no SQLAlchemy URL for the database engine {engine!r}: set "
            f"outbox_database_url yourself (choices here: {', '.join(sorted(_DRIVERS))})"
        )
    name = str(database.get("NAME", ""))
    if driver == "sqlite":
        return f"sqlite:///{name}"
    user = quote(str(database.get("USER") or ""), safe="")
    password = quote(str(database.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = database.get("HOST") or ("127.0.0.1" if driver.startswith("mysql") else "")
    port = f":{database['PORT']}" if database.get("PORT") else ""
    options = database.get("OPTIONS") or {}
    query = ""
    if driver.startswith("postgresql") and options.get("options"):
        query = "?" + urlencode({"options": options["options"]})
    return f"{driver}://{credentials}{host}{port}/{quote(name, safe='')}{query}"
