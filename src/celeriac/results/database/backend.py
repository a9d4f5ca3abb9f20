"""``DatabaseBackend``: the result store's I/O on SQLAlchemy 2 (``db+<SQLAlchemy URL>``).

A task record is a ``celery_taskmeta`` row keyed by its record key, a group a
``celery_tasksetmeta`` row, a chord rows in ``celeriac_chordmeta`` (see the package
docstring for why). Waiting polls with backoff. Imports results.base, its sibling modules,
leaves and SQLAlchemy; never the app.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.pool import NullPool

from celeriac._forksafe import ForkSafeLock
from celeriac.exceptions import BackendConnectionError, BackendError, ImproperlyConfigured
from celeriac.results.base import RecordFormat, ResultBackend
from celeriac.results.database import dialects
from celeriac.results.database.tables import KEY_LENGTH, Tables, build_tables
from celeriac.results.polling import poll_ready

logger = logging.getLogger(__name__)

#: Celery's database_engine_options default: check a pooled connection before use, and
#: replace connections after an hour (servers drop idle ones).
DEFAULT_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 3600}
# A failed statement (a dropped connection, a deadlock, a locked SQLite file) is tried this
# many times in all; every statement the store runs can safely run twice.
ATTEMPTS = 3
READY, UNREADY = "READY", "UNREADY"  # the status column of celeriac's task rows
_NOT_FOR_NULLPOOL = ("max_overflow", "echo_pool")  # with short-lived sessions
_IN_MEMORY = (None, "", ":memory:")  # SQLite database names that are no file


def _fetch_all(query: sa.Select[Any], connection: sa.Connection) -> list[Any]:
    return list(connection.execute(query).all())


def _reason(exc: sqlalchemy.exc.DBAPIError) -> str:
    text = str(exc.orig).strip() or type(exc.orig).__name__
    return text.splitlines()[0].rstrip(".")


class DatabaseBackend(ResultBackend):
    """Results in a SQL database through SQLAlchemy: PostgreSQL, MySQL/MariaDB, SQLite..."""

    schemes = ("db", "database")  # as the prefix: db+postgresql://, database+sqlite://

    def __init__(
        self,
        url: str,
        *,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        record_format: RecordFormat | None = None,
        engine_options: Mapping[str, Any] | None = None,
        engine_callback: Callable[[sa.Engine], Any] | None = None,
        short_lived_sessions: bool = False,
        table_names: Mapping[str, Any] | None = None,
        table_schemas: Mapping[str, Any] | None = None,
        create_tables_at_setup: bool = True,
    ) -> None:
        """``url`` is SQLAlchemy's (``postgresql://...``, without ``db+``); the other
        arguments are the ``database_*`` settings. Tables are created if missing: now with
        ``create_tables_at_setup`` (or on first use, when the database is down now)."""
        super().__init__(
            expires=expires,
            serializer=serializer,
            accept_content=accept_content,
            record_format=record_format,
        )
        try:
            self._url = sa.make_url(url)
        except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"result_backend 'db+…' must hold a SQLAlchemy database URL after 'db+', "
                f"e.g. 'db+postgresql://user:password@host/dbname' or 'db+sqlite:///results.db'"
                f": {exc}"
            ) from None
        self.url = self._url.render_as_string(hide_password=True)
        if self._url.get_backend_name() == "sqlite" and self._url.database in _IN_MEMORY:
            raise ImproperlyConfigured(
                "result_backend 'db+sqlite://' names an in-memory SQLite database, which each "
                "connection (each thread, each process) sees empty: name a file, e.g. "
                "'db+sqlite:///results.db'"
            )
        given = DEFAULT_ENGINE_OPTIONS if engine_options is None else engine_options
        self.engine_options = dict(given)
        self.short_lived_sessions = short_lived_sessions
        self.tables: Tables = build_tables(table_names, table_schemas)
        self._callback = engine_callback
        self._engine: sa.Engine | None = None
        self._pid = os.getpid()
        self._lock = ForkSafeLock()  # makes the engine on first use
        self._task_prefix = self.records.task_key("")
        if create_tables_at_setup:
            try:
                self._db()
            except BackendConnectionError as exc:  # down now: a process may start anyway
                logger.warning("%s The tables are made on first use.", exc)

    def __repr__(self) -> str:
        return f"<DatabaseBackend db+{self.url}>"

    # -- the engine ---------------------------------------------------------------------------
    def _db(self) -> sa.Engine:
        """The SQLAlchemy engine, made (with the tables) on first use; in a forked child,
        the parent's pooled connections are left to the parent."""
        engine = self._engine
        if engine is not None and self._pid != os.getpid():
            engine.dispose(close=False)
            self._pid = os.getpid()
        if engine is None:
            with self._lock:
                if self._engine is None:
                    made = self._create_engine()
                    try:
                        self._engine = self._prepare(made)
                    except BaseException:
                        made.dispose()
                        raise
                    self._pid = os.getpid()
                engine = self._engine
        return engine

    def _create_engine(self) -> sa.Engine:
        options = dict(self.engine_options)
        if self.short_lived_sessions:  # a connection per operation, none kept between
            options = {
                name: value
                for name, value in options.items()
                if not name.startswith("pool") and name not in _NOT_FOR_NULLPOOL
            }
            options["poolclass"] = NullPool
        try:
            engine = sa.create_engine(self._url, **options)
        except ModuleNotFoundError as exc:
            raise ImproperlyConfigured(
                f"result_backend db+{self.url} needs the database driver {exc.name!r}, which "
                f"is not installed: install it, or name a driver you have in the URL (e.g. "
                f"db+postgresql+psycopg://, db+mysql+pymysql://)"
            ) from exc
        except (sqlalchemy.exc.ArgumentError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"SQLAlchemy cannot make an engine for result_backend db+{self.url} with "
                f"database_engine_options {self.engine_options!r}: {exc}"
            ) from exc
        if self._callback is not None:
            self._callback(engine)
        return engine

    def _prepare(self, engine: sa.Engine) -> sa.Engine:
        """Create the missing tables; a process creating them at the same time is retried."""
        for attempt in range(1, ATTEMPTS + 2):
            try:
                with self._errors():
                    self.tables.metadata.create_all(engine, checkfirst=True)
                    self._check_columns(engine)
                return engine
            except BackendError:
                if attempt > ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)  # another process is creating them: let it finish
        raise AssertionError("unreachable")

    def _check_columns(self, engine: sa.Engine) -> None:
        """A table of the configured name made by something else fails here, by name."""
        inspector = sa.inspect(engine)
        for kind, table in (("task", self.tables.tasks), ("group", self.tables.groups)):
            found = {column["name"] for column in inspector.get_columns(table.name, table.schema)}
            missing = sorted({column.name for column in table.columns} - {"children"} - found)
            if missing:
                raise ImproperlyConfigured(
                    f"the table {table.fullname!r} lacks the column(s) {', '.join(missing)}: "
                    f"it was not made for Celery's or celeriac's results. Name another table "
                    f"in database_table_names (e.g. {{{kind!r}: 'celeriac_{kind}meta'}})"
                )

    @property
    def dialect(self) -> str:
        return self._db().dialect.name

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            raise BackendConnectionError(
                f"cannot reach the database result backend at db+{self.url}: {_reason(exc)}. "
                f"Check that the database server is running and reachable there, and that "
                f"result_backend names the right host, port, database, user and password."
            ) from exc
        except sqlalchemy.exc.DBAPIError as exc:
            reason = _reason(exc)
            raise BackendError(
                f"the database result backend at db+{self.url} refused a statement: {reason}"
            ) from exc

    def _run(self, work: Callable[[sa.Connection], Any]) -> Any:
        """``work`` in one transaction, tried again after a connection error or deadlock."""
        engine = self._db()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._errors(), engine.begin() as connection:
                    return work(connection)
            except BackendConnectionError:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    # -- rows ---------------------------------------------------------------------------------
    def _place(self, key: str) -> tuple[sa.Table, sa.Column[Any]]:
        if len(key) > KEY_LENGTH:
            raise BackendError(
                f"the result key {key[:40]!r}... is {len(key)} characters long; the database "
                f"store keeps keys of up to {KEY_LENGTH}: use shorter task and group ids"
            )
        if key.startswith(self._task_prefix):  # the rest (groups, chords' lists) are groups'
            return self.tables.tasks, self.tables.tasks.c.task_id
        return self.tables.groups, self.tables.groups.c.taskset_id

    def _alive(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """Rows not yet expired: written less than ``expires`` seconds ago."""
        if self.expires is None:
            return sa.true()
        return table.c.date_done > dialects.ago(self.dialect, self.expires)

    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        # A row's age is counted from date_done against this store's expires (what ttl
        # always is), as Celery's cleanup() counts it.
        table, column = self._place(key)
        dialect = self.dialect
        values: dict[str, Any] = {
            column.name: key,
            "result": value,
            "date_done": dialects.now(dialect),
        }
        if table is self.tables.tasks:
            values["status"] = READY if ready else UNREADY
        stmt = dialects.upsert(dialect, table, column.name, values)

        def write(connection: sa.Connection) -> None:
            if stmt is not None:
                connection.execute(stmt)
                return
            changes = {name: data for name, data in values.items() if name != column.name}
            updated = connection.execute(sa.update(table).where(column == key).values(changes))
            if updated.rowcount == 0:
                connection.execute(sa.insert(table).values(values))

        self._run(write)

    def _get(self, key: str) -> bytes | None:
        table, column = self._place(key)
        query = sa.select(table.c.result).where(column == key, self._alive(table))
        raw = self._run(lambda connection: connection.execute(query).scalar())
        return None if raw is None else bytes(raw)

    def _get_ready(self, key: str) -> bytes | None:
        tasks = self.tables.tasks
        query = sa.select(tasks.c.result).where(
            tasks.c.task_id == key, tasks.c.status == READY, self._alive(tasks)
        )
        raw = self._run(lambda connection: connection.execute(query).scalar())
        return None if raw is None else bytes(raw)

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        by_table: dict[sa.Table, tuple[sa.Column[Any], list[str]]] = {}
        for key in keys:
            table, column = self._place(key)
            by_table.setdefault(table, (column, []))[1].append(key)
        for table, (column, wanted) in by_table.items():
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                query = sa.select(column, table.c.result).where(
                    column.in_(chunk), self._alive(table)
                )
                rows: list[Any] = self._run(partial(_fetch_all, query))
                found.update((row[0], bytes(row[1])) for row in rows if row[1] is not None)
        return [found.get(key) for key in keys]

    def _delete(self, key: str) -> None:
        table, column = self._place(key)
        self._run(lambda connection: connection.execute(sa.delete(table).where(column == key)))

    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        # Polling: the database has no notifications here (see the docs for why not LISTEN/NOTIFY).
        return poll_ready(lambda: self._get_ready(key), timeout)

    # -- chords ---------------------------------------------------------------------------------
    # A chord is a row per ended header task plus its own row (the empty member): how many
    # tasks were added to it, and the member that completed it. Each step commits before the
    # next, so the count that follows a member's own commit sees every member committed
    # before it: the last to commit sees them all.
    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        chords = self.tables.chords
        self._insert_once(self._chord_row(key, member))
        alive = self._alive(chords)
        count = sa.select(sa.func.count()).where(
            chords.c.chord_key == key, chords.c.member != "", alive
        )
        grown = sa.select(chords.c.grown).where(chords.c.chord_key == key, chords.c.member == "")
        query = sa.select(count.scalar_subquery(), grown.scalar_subquery())
        ended, added = self._run(lambda connection: connection.execute(query).one())
        if ended < size + (added or 0):
            return False
        # Several members may see the set complete: the update of the chord's row, only
        # while it has no owner, lets exactly one of them record itself.
        self._insert_once(self._chord_row(key, ""))
        own = (
            sa.update(chords)
            .where(chords.c.chord_key == key, chords.c.member == "", chords.c.owner.is_(None))
            .values(owner=member)
        )
        if self._run(lambda connection: connection.execute(own).rowcount) == 1:
            return True
        owner = sa.select(chords.c.owner).where(chords.c.chord_key == key, chords.c.member == "")
        return bool(self._run(lambda connection: connection.execute(owner).scalar()) == member)

    def _grow(self, key: str, by: int, ttl: float | None) -> None:
        # The task that adds is still running, so no join can complete the set before this
        # commits: the count after that task's own join sees the new size.
        chords = self.tables.chords
        grow = (
            sa.update(chords)
            .where(chords.c.chord_key == key, chords.c.member == "")
            .values(grown=chords.c.grown + by)
        )
        for _ in range(2):
            if self._run(lambda connection: connection.execute(grow).rowcount) == 1:
                return
            if self._insert_once(self._chord_row(key, "", grown=by)):
                return
        raise BackendError(f"could not record the tasks added to the chord {key!r}")

    def _chord_row(self, key: str, member: str, grown: int = 0) -> sa.Insert:
        return sa.insert(self.tables.chords).values(
            chord_key=key, member=member, grown=grown, date_done=dialects.now(self.dialect)
        )

    def _insert_once(self, stmt: sa.Insert) -> bool:
        """Run an insert; False when its primary key was already there."""
        try:
            self._run(lambda connection: connection.execute(stmt))
        except BackendError as exc:
            if isinstance(exc.__cause__, sqlalchemy.exc.IntegrityError):
                return False
            raise
        return True

    # -- maintenance ------------------------------------------------------------------------
    def cleanup(self) -> int:
        """Delete the expired rows of every table (what Celery's ``cleanup()`` does, run
        daily by its beat); return how many. Expired rows already read as missing."""
        if self.expires is None:
            return 0

        def sweep(connection: sa.Connection) -> int:
            deleted = 0
            for table in (self.tables.tasks, self.tables.groups, self.tables.chords):
                stale = table.c.date_done < dialects.ago(self.dialect, self.expires or 0)
                deleted += connection.execute(sa.delete(table).where(stale)).rowcount
            return deleted

        removed: int = self._run(sweep)
        return removed

    def close(self) -> None:
        """Close the pooled connections (the engine opens new ones on next use)."""
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            engine.dispose()
