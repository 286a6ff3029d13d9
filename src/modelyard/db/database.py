"""Opening, migrating and closing the catalog database."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate as tortoise_migrate

APP = "modelyard"


def tortoise_config(db_url: str) -> dict[str, Any]:
    """Tortoise config for the catalog at `db_url`."""
    return {
        "connections": {"default": _normalise(db_url)},
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
    """Apply every committed migration to the database at `db_url`."""
    await tortoise_migrate(config=tortoise_config(db_url))
    await Tortoise.close_connections()


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
