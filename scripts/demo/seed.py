"""Seed the demo catalog into the data dir `modelyard serve` will use, through the real API.

    python scripts/demo/seed.py [--data-dir DIR] [--database-url URL] [--assistant]

`make run` runs this before serving; `make demo-assistant` runs it with `--assistant`. Settings
come from the same flags and MODELYARD_* variables as `modelyard serve`.

How it stays safe:
- `<data dir>/.demo-seeded` records what was seeded, for which database. With it, a part is
  skipped at once (no database opened, no server started).
- A catalog is the demo's only when that marker or `<data dir>/.demo-seeding` (written before the
  first change) names this database, or when it holds no models and no datasets. Any other
  catalog is left alone, with one line saying so.
- Writes go through a seed server (`modelyard serve` on a free loopback port, the same settings)
  as a fresh write token bound to the `demo` namespace: it cannot change anything outside
  `demo/`. Only its hash is stored (like every token), its secret lives in this process's memory,
  and it is revoked when seeding ends.
- Every step checks what is there first, and the marker is written last: an interrupted seed is
  completed by the next run, never skipped or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.config import Settings

# These models are tiny: BLAS thread pools only fight each other (and the seed server) for the
# CPUs. One thread made the distilled model's fit 35x faster on a busy 2-CPU machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[2]
DONE = ".demo-seeded"
RUNNING = ".demo-seeding"
TOKEN_PREFIX = "demo-seed-"
NAMESPACE = "demo"
TINY_CHAT = ROOT / "scripts" / "models" / "tiny-chat"
ASSISTANT_BUILD = ROOT / "build" / "demo-assistant"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Markers:
    """The two marker files in the data dir, both tied to one catalog database."""

    def __init__(self, settings: Settings) -> None:
        self.dir = settings.data_dir
        self.database = "sha256:" + hashlib.sha256(settings.resolved_database_url.encode()).hexdigest()[:16]

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("database") == self.database else None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.dir / name)

    def seeded(self) -> dict[str, Any]:
        """Parts seeded into this database: name -> {at, refs}."""
        done = self._read(DONE)
        return dict(done["parts"]) if done else {}

    def ours(self) -> bool:
        """Did a seed (finished or not) already write to this database?"""
        return self._read(DONE) is not None or self._read(RUNNING) is not None

    def start(self, parts: list[str]) -> None:
        self._write(RUNNING, {"database": self.database, "parts": parts, "started": _now()})

    def finish(self, part: str, refs: list[str]) -> None:
        parts = self.seeded()
        parts[part] = {"at": _now(), "refs": refs}
        self._write(DONE, {"database": self.database, "parts": parts})

    def stop(self) -> None:
        (self.dir / RUNNING).unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the catalog database, directly: only to decide, and to create and revoke the seed token ---

async def _open(settings: Settings) -> None:
    from modelyard.db.database import open_database

    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await open_database(settings.resolved_database_url)


async def claim(settings: Settings, ours: bool) -> str | None:
    """A fresh write token for `demo/` (its secret), or None when the catalog is not the demo's."""
    from modelyard.catalog import tokens
    from modelyard.catalog.tokens import Scope
    from modelyard.db.database import close_database
    from modelyard.db.tables import DatasetRow, ModelRow

    await _open(settings)
    try:
        if not ours and (await ModelRow.all().count() or await DatasetRow.all().count()):
            return None
        for row in await tokens.list_tokens():  # left by a seed that was killed: nobody has the secret
            if row.name.startswith(TOKEN_PREFIX) and row.revoked_at is None:
                await tokens.revoke_token(row.name, actor="demo-seed")
        secret, _ = await tokens.create_token(TOKEN_PREFIX + secrets.token_hex(4), Scope.WRITE, NAMESPACE,
                                              actor="demo-seed")
        return secret
    finally:
        await close_database()


async def release(settings: Settings, secret: str) -> None:
    """Revoke the seed token."""
    from modelyard.catalog import tokens
    from modelyard.db.database import close_database

    await _open(settings)
    try:
        for row in await tokens.list_tokens():
            if row.name.startswith(TOKEN_PREFIX) and row.revoked_at is None and row.prefix == secret[:10]:
                await tokens.revoke_token(row.name, actor="demo-seed")
    finally:
        await close_database()


# --- the seed server -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def seed_server(settings: Settings, meanwhile: Callable[[], None] = lambda: None) -> Iterator[str]:
    """`modelyard serve` on a free loopback port with the same data dir and database; `meanwhile`
    runs while it starts (the server's imports and the seed's overlap)."""
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "modelyard.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        command += ["--database-url", settings.database_url]
    env = {**os.environ, "MODELYARD_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            meanwhile()
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError("the seed server did not start:\n" + log.read().decode(errors="replace")[-2000:])
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- parts ------------------------------------------------------------------------------------------

def _catalog(publisher: Any) -> list[str]:
    import catalog

    return catalog.seed(publisher)


def _tiny_chat(publisher: Any) -> list[str]:
    import extras

    return extras.tiny_chat(publisher, TINY_CHAT)


def _assistant(publisher: Any) -> list[str]:
    import extras

    return extras.minilm(publisher, ASSISTANT_BUILD)


def _smollm2(publisher: Any) -> list[str]:
    import extras

    return extras.smollm2(publisher, extras.smollm2_folder(ASSISTANT_BUILD))


def _prepare(parts: list[str]) -> None:
    """Import scikit-learn and load the datasets (seconds of CPU) while the seed server starts."""
    if "catalog" in parts:
        import catalog

        catalog.prepare()


PARTS: dict[str, Callable[[Any], list[str]]] = {
    "catalog": _catalog, "tiny-chat": _tiny_chat, "assistant": _assistant, "smollm2": _smollm2,
}


def seed(settings: Settings, parts: list[str]) -> int:
    """Seed the parts not seeded yet; 0 also when there is nothing to do or the catalog is not ours."""
    started = time.monotonic()
    markers = Markers(settings)
    done = markers.seeded()
    todo = [p for p in parts if p not in done]
    if "tiny-chat" in todo and not any(TINY_CHAT.glob("**/*.onnx")):
        say(f"demo: {TINY_CHAT.relative_to(ROOT)} holds no model yet; demo/tiny-chat skipped")
        todo.remove("tiny-chat")
    if not todo:
        if done:
            say(f"demo: catalog already seeded ({settings.data_dir / DONE}); nothing to do")
        return 0
    secret = asyncio.run(claim(settings, markers.ours()))
    if secret is None:
        say(f"demo: {_where(settings)} already holds models or datasets not seeded by the demo; left alone")
        return 1 if "assistant" in todo or "smollm2" in todo else 0  # `make run` goes on serving; `make demo-assistant` fails
    markers.start(todo)
    try:
        from publish import Publisher

        if "assistant" in todo or "smollm2" in todo:
            import extras

            if "assistant" in todo:
                extras.export_minilm(ASSISTANT_BUILD)
            if "smollm2" in todo:
                extras.build_smollm2(ASSISTANT_BUILD)

        with seed_server(settings, lambda: _prepare(todo)) as url, tempfile.TemporaryDirectory(prefix="modelyard-demo-") as work:
            publisher = Publisher(url, secret, Path(work))
            try:
                for part in todo:
                    say(f"demo: seeding {part} into {_where(settings)}")
                    markers.finish(part, PARTS[part](publisher))
            finally:
                publisher.close()
    finally:
        asyncio.run(release(settings, secret))
    markers.stop()
    say(f"demo: seeded {', '.join(todo)} in {time.monotonic() - started:.1f} s")
    if "catalog" in todo:
        say("demo: try  .venv/bin/modelyard-agent pull demo/iris-classifier@production && "
            ".venv/bin/modelyard-agent run demo/iris-classifier@production --input scripts/demo/examples/iris.json")
    return 0


def _where(settings: Settings) -> str:
    if settings.database_url:
        return "the catalog at " + settings.database_url.split("@")[-1]
    return str(settings.data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", help="data folder (default: $MODELYARD_DATA_DIR or ./data)")
    parser.add_argument("--database-url", help="catalog database (default: SQLite in the data dir)")
    parser.add_argument("--assistant", action="store_true",
                        help="also export all-MiniLM-L6-v2 (fp32 and int8) and publish both")
    args = parser.parse_args(argv)
    settings = Settings.load(data_dir=args.data_dir, database_url=args.database_url)
    parts = ["catalog", "tiny-chat"] + (["assistant", "smollm2"] if args.assistant else [])
    try:
        return seed(settings, parts)
    except KeyboardInterrupt:
        say("demo: interrupted; the next run completes the seed")
        return 130
    except Exception as exc:  # one line, then the way out: the catalog is left resumable
        say(f"demo: seeding failed: {type(exc).__name__}: {exc}\n"
            "demo: run it again to complete the seed, or `make run DEMO=0` to serve without it")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
