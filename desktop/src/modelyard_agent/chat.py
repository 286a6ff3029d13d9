"""`modelyard-agent chat REF`: talk to a pulled text-generation version."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register this module's subcommands (none yet)."""
