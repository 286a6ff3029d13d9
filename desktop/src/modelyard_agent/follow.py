"""`modelyard-agent follow NAME@ALIAS`: pull new versions as the alias moves."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register this module's subcommands (none yet)."""
