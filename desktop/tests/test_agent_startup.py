"""`ls` and `--help` start light: they load none of the big libraries the agent's other commands
use (issue 13, item 4). Counted in `sys.modules` of a fresh interpreter, never by the clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hostile import version_doc
from modelyard_agent.cache import Cache
from modelyard_agent.cli import COMMAND_MODULES, parser
from modelyard_agent.manifest import Manifest
from modelyard_agent.refs import parse

# What only running a model, serving, or talking to the registry needs.
HEAVY = {"numpy", "onnxruntime", "onnxruntime_genai", "starlette", "uvicorn", "tokenizers", "jinja2",
         "anyio", "websockets", "httpx", "httpcore"}

# Runs the CLI as the console script does, then prints the packages it loaded as the last line.
PROBE = """
import json, sys
from modelyard_agent.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "packages": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def run_cli(home: Path, *argv: str) -> tuple[int, str, set[str]]:
    """Exit status, output, and the top-level packages loaded by `modelyard-agent ARGV`."""
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True,
                          text=True, check=True)
    *printed, last = done.stdout.splitlines()
    result = json.loads(last)
    return result["code"], "\n".join(printed), set(result["packages"])


def pulled(home: Path) -> str:
    """A cache holding one complete version; its ref."""
    data = b"weights"
    cache = Cache(home)
    manifest = Manifest.from_server(version_doc("demo/tiny", {"model.onnx": data}), parse("demo/tiny:1"), "test")
    manifest.pulled_at = "2026-01-01T00:00:00+00:00"
    cache.blob_dir.mkdir(parents=True)
    cache.blob(manifest.artifacts[0].digest).write_bytes(data)
    cache.save(manifest)
    return manifest.ref


def test_ls_loads_no_heavy_library(tmp_path: Path) -> None:
    ref = pulled(tmp_path)
    code, out, packages = run_cli(tmp_path, "ls")
    assert code == 0 and ref in out and "INCOMPLETE" not in out
    assert packages & HEAVY == set()


def test_help_loads_no_heavy_library_and_lists_every_command(tmp_path: Path) -> None:
    code, out, packages = run_cli(tmp_path, "--help")
    assert code == 0
    assert packages & HEAVY == set()
    for command in ("pull", "ls", "serve", "run", *(c for cs in COMMAND_MODULES.values() for c in cs)):
        assert f"\n    {command} " in out


def test_a_pull_loads_at_most_the_http_client(tmp_path: Path) -> None:
    ref = pulled(tmp_path)
    code, out, packages = run_cli(tmp_path, "pull", "--offline", ref)
    assert code == 0 and "from the cache (offline)" in out
    assert packages & HEAVY <= {"httpx", "httpcore"}


def test_a_command_of_another_module_gets_its_own_options(tmp_path: Path) -> None:
    code, out, _ = run_cli(tmp_path, "chat", "--help")
    assert code == 0 and "--temperature" in out and "--backend" in out


def test_help_lines_of_other_modules_commands_are_their_own() -> None:
    """The lines `--help` shows without loading a module are the ones the module registers."""
    listed = parser().format_help()
    for commands in COMMAND_MODULES.values():
        for command in commands:
            assert parser(command).format_help() == listed
