"""Rewrite the settings table in README.md from `Settings` (run after adding a setting)."""

from __future__ import annotations

from pathlib import Path

from modelyard.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| variable | default | meaning |"


def table() -> str:
    """The markdown table of every setting."""
    rows = [HEADER, "| --- | --- | --- |"]
    rows += [f"| `{name}` | `{default}` | {doc} |" for name, default, doc in Settings.documented()]
    return "\n".join(rows)


def main() -> None:
    text = README.read_text()
    start = text.index(HEADER)
    end = text.index("\n\n", start)
    README.write_text(text[:start] + table() + text[end:])


if __name__ == "__main__":
    main()
