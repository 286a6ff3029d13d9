"""Numbers in HTTP headers (`Range`, `Upload-Offset`): ASCII digits that fit in 64 bits.

`str.isdigit` accepts '²' (which `int` refuses) and `int` refuses more than 4,300 digits with a
ValueError: both answered 500 (issue 11, item 7). Positions here are byte counts, so anything
past a signed 64-bit integer cannot name a real byte.
"""

from __future__ import annotations

import re

MAX_POSITION = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def position(text: str | None) -> int | None:
    """The byte position `text` spells, or None unless it is 1-19 ASCII digits up to 2^63-1."""
    if text is None or _DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= MAX_POSITION else None
