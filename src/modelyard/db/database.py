"""Opening, migrating and closing the catalog database."""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as tortoise_migrate

APP = "modelyard"
_MIGRATION_LOCK = 0x6D6F_6479_6D69


def tortoise_config(db_url: str) -> dict[str, Any]:
    """Tortoise config for the catalog at `db_url`."""
    connection = expand_db_url(_normalise(db_url))
    if connection["engine"].endswith("asyncpg"):
        # asyncpg reuses prepared statements; after five runs PostgreSQL may switch one to a
        # generic plan that ignores the values. For typed search (`status <> $1`, `num_value < $3`)
        # that plan scanned every version: 1.5 ms became 52 ms (scripts/bench/catalog.py).
        settings = connection["credentials"].setdefault("server_settings", {})
        settings["plan_cache_mode"] = "force_custom_plan"
    return {
        "connections": {"default": connection},
        "apps": {
            APP: {
                "models": ["modelyard.db.tables"],
                "default_connection": "default",
                "migrations": "modelyard.db.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _normalise(db_url: str) -> str:
    # asyncpg accepts both spellings; Tortoise only knows `postgres://`.
    if db_url.startswith("postgresql://"):
        return "postgres://" + db_url.removeprefix("postgresql://")
    return db_url


async def migrate(db_url: str) -> None:
    """Apply every committed migration to the database at `db_url`.

    On PostgreSQL a session-level advisory lock makes replicas that start together migrate one
    after the other (the second finds nothing left to do) instead of racing on CREATE TABLE.
    """
    config = tortoise_config(db_url)
    if not config["connections"]["default"]["engine"].endswith("asyncpg"):
        await tortoise_migrate(config=config)
        await Tortoise.close_connections()
        return
    lock = await asyncpg.connect(_normalise(db_url))
    try:
        await lock.execute(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
        await tortoise_migrate(config=config)
        await Tortoise.close_connections()
    finally:
        await lock.close()  # releases the lock


async def open_database(db_url: str) -> None:
    """Migrate, then open connections for serving."""
    await migrate(db_url)
    await Tortoise.init(config=tortoise_config(db_url), _enable_global_fallback=True)


async def close_database() -> None:
    """Close every connection and forget statements prepared for this database's dialect."""
    await Tortoise.close_connections()
    # Tortoise caches INSERT/UPDATE text per connection name, across inits: without this, an app
    # reopened on another database in the same process (the test suite) would reuse `?` on asyncpg.
    EXECUTOR_CACHE.clear()


def dialect() -> str:
    """`sqlite` or `postgres`, for the raw SQL that differs between them."""
    return Tortoise.get_connection("default").capabilities.dialect
