"""A small builder for the raw SQL the ORM cannot express (recursive walks, typed search).

It numbers placeholders for the connection's dialect (`?1` on SQLite, `$1` on asyncpg), so the
same statement text serves both databases and parameters may appear in any order in the text.
"""

from __future__ import annotations

from typing import Any

from tortoise import connections


class Sql:
    """Collects statement text and its parameters."""

    def __init__(self) -> None:
        conn = connections.get("default")
        self.dialect: str = conn.capabilities.dialect
        self.params: list[Any] = []

    def p(self, value: Any) -> str:
        """Add a parameter; return its placeholder."""
        self.params.append(value)
        return f"?{len(self.params)}" if self.dialect == "sqlite" else f"${len(self.params)}"

    def many(self, values: list[Any]) -> str:
        """Placeholders for an `IN (...)` list."""
        return ", ".join(self.p(v) for v in values)

    async def rows(self, text: str) -> list[dict[str, Any]]:
        """Run `text` with the collected parameters; return rows as dicts."""
        return await connections.get("default").execute_query_dict(text, self.params)

    async def tuples(self, text: str) -> list[Any]:
        """Run `text`; rows as the driver gives them (index access, no dict per row)."""
        return list((await connections.get("default").execute_query(text, self.params))[1])
