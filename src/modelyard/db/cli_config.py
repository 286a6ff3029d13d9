"""Config for Tortoise's own CLI: `tortoise -c modelyard.db.cli_config.TORTOISE_ORM makemigrations`."""

from __future__ import annotations

from modelyard.db.database import tortoise_config

TORTOISE_ORM = tortoise_config("sqlite://:memory:")
