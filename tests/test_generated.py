"""Generated and documented things stay true: schema.graphql and the README's settings table."""

from __future__ import annotations

from pathlib import Path

from modelyard.config import Settings
from modelyard.graphql.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_is_current() -> None:
    printed = build_schema().as_str().strip()
    committed = (ROOT / "schema.graphql").read_text().strip()
    assert committed == printed, "schema.graphql is stale: run `make schema` and commit it"


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, _, _ in Settings.documented() if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_settings_precedence_flags_then_env_then_default(tmp_path: Path) -> None:
    env = {"MODELYARD_PORT": "9001", "MODELYARD_HOST": "0.0.0.0"}
    s = Settings.load(env, port=9002)
    assert (s.port, s.host) == (9002, "0.0.0.0")
    assert Settings.load({}).host == "127.0.0.1"
    assert Settings.load({}, data_dir=str(tmp_path)).resolved_database_url.endswith("modelyard.db")


def test_bad_settings_are_refused_with_a_clear_message() -> None:
    import pytest

    from modelyard.errors import InvalidError

    with pytest.raises(InvalidError, match="MODELYARD_DATABASE_URL"):
        Settings.load({"MODELYARD_DATABASE_URL": "mysql://x"})
    with pytest.raises(InvalidError, match="int"):
        Settings.load({"MODELYARD_PORT": "eighty"})


MIGRATION_CHECK = """
import asyncio
from tortoise.cli.cli import tortoise_cli_context
from tortoise.migrations.autodetector import MigrationAutodetector
from modelyard.db.database import tortoise_config

async def main() -> None:
    config = tortoise_config("sqlite://:memory:")
    async with tortoise_cli_context(config) as ctx:
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    print(len(writers))

asyncio.run(main())
"""


def test_committed_migrations_match_the_tables() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MIGRATION_CHECK], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0", "tables changed without a migration: run `tortoise makemigrations`"
