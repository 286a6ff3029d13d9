"""Opening, migrating and closing the catalog database."""

from __future__ import annotations

from collections.abc import Sequence
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
        before = await _applied(lock)
        await tortoise_migrate(config=config)
        await Tortoise.close_connections()
        await _fresh_statistics(lock, all_tables=await _applied(lock) != before)
    finally:
        await lock.close()  # releases the lock


async def _applied(conn: asyncpg.Connection) -> int:
    """How many migrations the database records (0 before the first)."""
    if not await conn.fetchval("SELECT to_regclass('tortoise_migrations') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT count(*) FROM tortoise_migrations"))


async def _fresh_statistics(conn: asyncpg.Connection, all_tables: bool) -> None:
    """ANALYZE after migrations (new tables and indexes) and any table never analysed: until
    then the planner guesses, and a fresh catalog of 40k versions served pages 2.6x slower.
    Autovacuum would get there eventually, when it is on (it is off on some machines)."""
    if all_tables:
        await conn.execute("ANALYZE")
        return
    never = await conn.fetch(
        "SELECT quote_ident(relname) AS name FROM pg_stat_user_tables "
        "WHERE schemaname = current_schema() AND last_analyze IS NULL AND last_autoanalyze IS NULL"
    )
    if never:
        await conn.execute("ANALYZE " + ", ".join(r["name"] for r in never))


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


# Autovacuum's default share (autovacuum_analyze_scale_factor): a table whose rows grew by less
# than this since its statistics were taken keeps plans that are still good.
_STALE_SHARE = 0.1


async def analyze(tables: Sequence[str] | None = None) -> None:
    """Refresh PostgreSQL's planner statistics of `tables` (None: every table); a no-op on SQLite.

    For right after a bulk write: autovacuum would get there too, but up to a minute later, and
    until then the planner may take a table of thousands of rows for an empty one.
    """
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        return
    names = ", ".join(f'"{t}"' for t in tables or ())
    await conn.execute_query_dict(f"ANALYZE {names}".strip())


async def analyze_if_grown(table: str, added: int, tables: Sequence[str]) -> bool:
    """`analyze(tables)` if the `added` rows of `table` are at least a tenth of the rows its
    statistics counted (or it has none yet); whether it ran. PostgreSQL only: one catalog read
    when the statistics are still good, so it costs little to ask after every large write."""
    conn = Tortoise.get_connection("default")
    if conn.capabilities.dialect != "postgres":
        return False
    rows = await conn.execute_query_dict(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)", [table])
    counted = float(rows[0]["reltuples"]) if rows else -1.0  # -1: never analysed
    if counted > 0 and added < counted * _STALE_SHARE:
        return False
    await analyze(tables)
    return True
