"""Fault injection against real workers and a real broker, with a Jepsen-style report.

``python -m tests.chaos --tier full --seed N`` runs every scenario and prints the report;
``tests/chaos/test_chaos_smoke.py`` is the short tier the default test run includes."""
