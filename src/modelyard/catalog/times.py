"""Times in filters: a time without a zone is UTC, everywhere a filter or `at` takes one.

(Times that are recorded — run start/end, token expiry — must name their zone instead; their
rules live with what records them.)
"""

from __future__ import annotations

from datetime import UTC, datetime


def filter_time(value: datetime) -> datetime:
    """`value` as an aware time: one without a zone is read as UTC."""
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)
