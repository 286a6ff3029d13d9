"""Persistence: Tortoise tables, migrations, connection set-up and raw SQL helpers."""
