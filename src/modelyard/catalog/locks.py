"""Transaction locks that keep the catalog's rules true under concurrent writers and replicas.

    lock_model    the model's row (FOR UPDATE): version status, aliases, deleting the model
    lock_lineage  one advisory lock for every lineage write and model deletion (cycles, parents)

Both last until the transaction ends. On SQLite they are no-ops or row reads: it writes one
transaction at a time anyway.
"""

from __future__ import annotations

from modelyard.db.sql import Sql
from modelyard.db.tables import ModelRow
from modelyard.errors import NotFoundError

# Serialises lineage writes on PostgreSQL so two concurrent edges cannot close a cycle together.
_LINEAGE_LOCK = 0x6D6F_6479_6C69


async def lock_lineage() -> None:
    """Take the lineage write lock for the current transaction (PostgreSQL; SQLite is serial)."""
    sql = Sql()
    if sql.dialect == "postgres":
        await sql.rows(f"SELECT pg_advisory_xact_lock({sql.p(_LINEAGE_LOCK)})")


async def lock_model(model_id: int) -> ModelRow:
    """Lock a model's row for the rest of the transaction, or NOT_FOUND if it is gone.

    Every change to a version's status, to an alias or to the model's existence takes this lock
    first, so rules that read one and write the other ("no alias on an archived version") hold
    under any interleaving and across replicas (PostgreSQL; SQLite writes one at a time anyway).
    """
    row = await ModelRow.select_for_update().get_or_none(id=model_id)
    if row is None:
        raise NotFoundError("the model was deleted meanwhile")
    return row
