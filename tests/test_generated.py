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
