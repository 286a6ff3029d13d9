"""Did you mean…: the model names closest to a name someone typed (for "not found" pages).

The text is free (at most 200 characters, the usual text rules); a ref's version part is
dropped, case is ignored. Names are scored with difflib's ratio against the full name and the
name without its namespace, and a name containing the text scores at least 0.6 and more the
more of it the text covers. Two statements whatever the catalog holds; the scoring, CPU work
over every readable name, runs in a worker thread.
"""

from __future__ import annotations

import heapq
from difflib import SequenceMatcher

import anyio.to_thread

from modelyard.catalog.text import check_text
from modelyard.db.tables import ModelRow
from modelyard.errors import InvalidError, LimitError

MAX_TEXT = 200
MAX_SUGGESTIONS = 20
CUTOFF = 0.6
MIN_CONTAINED = 3
"""Shorter text is in too many names to say anything by being in one."""


async def suggest_models(text: str, first: int, namespace: str | None = None) -> list[ModelRow]:
    """Up to `first` models whose names are closest to `text`, best first (only `namespace`'s
    when given)."""
    check_text(text, "name", MAX_TEXT)
    if first < 0:
        raise InvalidError("first must not be negative")
    if first > MAX_SUGGESTIONS:
        raise LimitError(f"first may be at most {MAX_SUGGESTIONS}, got {first}")
    wanted = _core(text)
    if not wanted or not first:
        return []
    names = ModelRow.all() if namespace is None else ModelRow.filter(namespace=namespace)
    pairs: list[tuple[int, str]] = list(await names.values_list("id", "full_name"))
    best = await anyio.to_thread.run_sync(rank, wanted, pairs, first)
    if not best:
        return []
    rows = {r.id: r for r in await ModelRow.filter(id__in=best)}
    return [rows[i] for i in best if i in rows]


def _core(text: str) -> str:
    """What to compare: lowercased, trimmed, without a ref's `:N` or `@…`."""
    return text.strip().lower().split("@", 1)[0].split(":", 1)[0].strip()


def _bare(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def score(wanted: str, name: str) -> float:
    """How close `name` is to `wanted` (both lowercase), 0 to 1."""
    best = 0.0
    for text, candidate in ((wanted, name), (wanted, _bare(name)), (_bare(wanted), _bare(name))):
        if not text:
            continue
        best = max(best, SequenceMatcher(None, text, candidate, autojunk=False).ratio())
        if len(text) >= MIN_CONTAINED and text in candidate:
            best = max(best, CUTOFF + (1 - CUTOFF) * len(text) / len(candidate))
    return best


def rank(wanted: str, names: list[tuple[int, str]], first: int) -> list[int]:
    """Ids of the `first` best-scoring names at or above the cutoff; ties by name."""
    scored = ((score(wanted, name), name, pk) for pk, name in names)
    kept = [(-s, name, pk) for s, name, pk in scored if s >= CUTOFF]
    return [pk for _, _, pk in heapq.nsmallest(first, kept)]
