"""The agent stands alone: it never imports the server package."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
from pathlib import Path

import modelyard_agent
from modelyard_agent.progress import Progress

SRC = Path(modelyard_agent.__file__).parent


def test_agent_source_never_imports_the_server() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "modelyard"]
    assert offenders == []


def test_cli_runs_without_loading_the_server_package() -> None:
    code = ("import sys; from modelyard_agent.cli import parser; parser(); "
            "print(any(m == 'modelyard' or m.startswith('modelyard.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "modelyard_agent", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("pull", "login", "ls", "rm", "gc", "verify", "outdated", "export", "import"):
        assert command in out


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_bytes_rate_and_eta_on_a_terminal_only() -> None:
    term = FakeTerminal()
    bar = Progress(4 * 1024 * 1024, "m:1", term)
    bar.advance(1024 * 1024)
    bar.close()
    line = term.getvalue()
    assert "1.0 MiB/4.0 MiB" in line and "/s" in line and "ETA" in line
    quiet = io.StringIO()
    Progress(10, "m:1", quiet).advance(5)
    assert quiet.getvalue() == ""


def test_the_readme_documents_every_setting() -> None:
    """Every environment variable and config key the agent reads is in desktop/README.md."""
    readme = (SRC.parents[1] / "README.md").read_text()
    config = (SRC / "config.py").read_text()
    variables = set(re.findall(r'"(MODELYARD_[A-Z_]+)"', config))
    keys = set(re.findall(r'saved\.get\("([a-z_]+)"\)', config))
    assert {"MODELYARD_AGENT_ALLOWED_ORIGINS", "allowed_origins"} <= variables | keys
    assert [v for v in sorted(variables | keys) if f"`{v}" not in readme] == []
