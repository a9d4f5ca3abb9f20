"""Migrations of the outbox's Django app."""
