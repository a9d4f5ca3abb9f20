"""Brokers: the ``Broker`` seam (``base``) and one engine per module or package.

Engines never import each other or the app; the app builds them from a URL.
"""
