"""A small folder of real-ish notes on different topics, for `ask` tests."""

from __future__ import annotations

from pathlib import Path

DOCS: dict[str, str] = {
    "garden/tomatoes.md": """# Growing tomatoes

Tomatoes need at least six hours of direct sunlight a day and a sheltered spot out of the wind.
Plant them after the last frost, burying the stem deeply so it grows extra roots.

## Watering

Water tomato plants deeply two or three times a week rather than a little every day.
Water the soil at the base, not the leaves, and keep the moisture even to avoid split fruit.

## Pests

Aphids and whitefly gather under the leaves. Spray them off with water or plant basil nearby.
""",
    "kitchen/sourdough.md": """# Sourdough bread

Feed the starter with equal weights of flour and water the evening before baking.

## Shaping and baking

Shape the dough into a tight ball, proof it overnight in the fridge, then bake in a preheated
Dutch oven at 250 °C for twenty minutes with the lid on and twenty more with the lid off.
""",
    "notes/travel.txt": """Passport renewal takes about six weeks, so apply well before any trip abroad.
Keep a photo of the passport page on your phone.

The night train to Vienna leaves at 22:10 and has sleeper cabins for two or four people.
Book the cabin at least a month ahead in summer.
""",
    "it/backups.md": """# Backups

Follow the 3-2-1 rule: three copies of your data, on two kinds of storage, one of them offsite.

## Restores

A backup you never restored is a hope, not a backup. Test a full restore every quarter and time it.
""",
    "money/taxes.txt": """The tax return is due on the last day of April.
Keep receipts for charitable donations and work equipment for five years.
""",
}


def write_docs(root: Path) -> Path:
    """Write DOCS under `root`; returns it."""
    for name, text in DOCS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def line_of(name: str, starts_with: str) -> int:
    """1-based number of the first line of DOCS[name] starting with `starts_with`."""
    for number, line in enumerate(DOCS[name].splitlines(), start=1):
        if line.startswith(starts_with):
            return number
    raise KeyError(starts_with)
