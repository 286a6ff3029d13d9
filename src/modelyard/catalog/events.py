"""Live events: subscribers read the audit log, woken as soon as it grows.

A notification only says "look again"; the events themselves are always read from the audit
table, in id order, after the last one a subscriber saw. So a subscriber that reconnects with
`since: <last id>` misses nothing, and a missed wake-up costs at most one poll interval.

Wake-ups come from this process's own mutations (`wake()`), from PostgreSQL `NOTIFY` on every
replica (a `LISTEN` connection per process), and from a periodic poll that also catches writes
by other processes on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg

from modelyard.catalog.audit import CHANNEL, AuditFilter, events_query, latest_id
from modelyard.db.tables import AuditEventRow
from modelyard.errors import LimitError

log = logging.getLogger("modelyard.events")
BATCH = 100


class EventBus:
    """Wakes the subscribers of one process and counts them per client."""

    def __init__(self, poll_seconds: float, max_per_client: int, listen_dsn: str | None = None) -> None:
        self.poll_seconds = poll_seconds
        self.max_per_client = max_per_client
        self.listen_dsn = listen_dsn
        self._changed = asyncio.Event()
        self._active: Counter[str] = Counter()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening for other replicas' events (PostgreSQL only)."""
        if self.listen_dsn is not None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready), name="modelyard-listen")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 10)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    def wake(self) -> None:
        """Tell every waiting subscriber to look at the audit log again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @contextlib.contextmanager
    def slot(self, client: str) -> Iterator[None]:
        """Hold one of `client`'s subscription slots; LIMIT when it has none left."""
        if self._active[client] >= self.max_per_client:
            raise LimitError(
                f"{client} already holds {self._active[client]} live subscriptions; "
                f"the limit is {self.max_per_client}"
            )
        self._active[client] += 1
        try:
            yield
        finally:
            self._active[client] -= 1

    async def stream(self, f: AuditFilter, since: int | None) -> AsyncIterator[AuditEventRow]:
        """Events matching `f` after id `since` (None: from now on), in order, forever."""
        last = await latest_id() if since is None else since
        query = events_query(f)
        while True:
            changed = self._changed  # taken before reading, so no wake-up falls in between
            rows = await query.filter(id__gt=last).order_by("id").limit(BATCH)
            for row in rows:
                last = row.id
                yield row
            if len(rows) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self.poll_seconds)

    async def _listen(self, ready: asyncio.Event) -> None:
        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self.listen_dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            closed = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _c, done=closed: done.set())
                await conn.add_listener(CHANNEL, lambda *_args: self.wake())
                ready.set()
                delay = 0.5
                self.wake()  # catch up on anything committed while we were not listening
                await closed.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
