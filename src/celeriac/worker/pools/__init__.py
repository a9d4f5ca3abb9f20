"""Pools: where task bodies run. ``base`` is the seam; one module per kind."""
