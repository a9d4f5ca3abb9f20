"""``db+<SQLAlchemy URL>`` results: Celery's database result backend, on SQLAlchemy 2.

The store keeps celeriac's records (keys and bytes from the ``RecordFormat``) in Celery's
tables rather than tables of its own design, so that a database Celery already uses works
as it is and Celery's rows can stay beside ours: a task record is the ``celery_taskmeta``
row whose ``task_id`` is the record's key (``task:<id>``, never the bare id a Celery row
has), with the bytes in ``result`` and ``READY``/``UNREADY`` in ``status``; a group is a
``celery_tasksetmeta`` row keyed ``group:<id>``. Chords, which Celery's database backend
joins by polling from a task, get a table of ours (``celeriac_chordmeta``): a row per ended
header task under a unique (chord, member) key, and one row naming the task that completed
the set, so the join is atomic without locks. A row expires ``result_expires`` after its
``date_done``, on the database server's clock. Imports results.base, leaves, SQLAlchemy.
"""

from celeriac.results.database.backend import DEFAULT_ENGINE_OPTIONS, DatabaseBackend

__all__ = ["DEFAULT_ENGINE_OPTIONS", "DatabaseBackend"]
