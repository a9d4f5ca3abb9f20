"""Django integration, as Celery's: the fix-up the app installs when
``DJANGO_SETTINGS_MODULE`` is set (``fixup``), its worker half (``worker``) and
``DjangoTask`` with ``delay_on_commit`` (``task``).

Edge layer: imports Django and the layers below; nothing in celeriac imports it except by
name (``celeriac.app.fixups``).
"""
