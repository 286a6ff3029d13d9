"""Local servers as other commands see them: the defaults of `serve`, and the serving markers.

While a server runs it keeps `<home>/serving/<pid>.json` (pid, host, port, the runtime keys
`name:number` of the sessions it holds now, and the versions its followed aliases mean); it is
rewritten atomically whenever those change and removed on exit. `rm` refuses while a marker is
live and `ls` reads the loaded keys from them; a marker whose pid is no longer alive (a server
killed with SIGKILL) is ignored.

Kept apart from `serve` so that `ls`, `rm` and `--help` start without loading the server
(starlette, uvicorn, ONNX Runtime).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from modelyard_agent.errors import UsageError

DEFAULT_PORT = 8080
DEFAULT_IDLE_TTL = 600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def servers(home: Path) -> list[dict[str, Any]]:
    """The markers of local servers still running on this home."""
    folder = home / "serving"
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            info = json.loads(path.read_text())
            if _alive(int(info["pid"])):
                found.append(info)
    return found


def refuse_if_served(home: Path, ref: str) -> None:
    """UsageError while a local server (which serves every pulled version) is running."""
    running = servers(home)
    if running:
        where = ", ".join(f"pid {s['pid']} on {s['host']}:{s['port']}" for s in running)
        raise UsageError(f"{ref} is being served ({where}); stop the server first")


def loaded(home: Path) -> set[str]:
    """Runtime keys (`name:number`) whose sessions a running local server holds now."""
    return {str(key) for info in servers(home) for key in info.get("loaded") or []}


class Marker:
    """This process's serving marker, rewritten atomically when what it records changes."""

    def __init__(self, home: Path, host: str, port: int) -> None:
        self.path = home / "serving" / f"{os.getpid()}.json"
        self.info: dict[str, Any] = {"pid": os.getpid(), "host": host, "port": port,
                                     "loaded": [], "following": {}}

    def __enter__(self) -> Marker:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def update(self, **values: Any) -> None:
        """Record new values (`loaded=[...]`, `following={...}`) if they differ."""
        if any(self.info.get(k) != v for k, v in values.items()):
            self.info.update(values)
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.info))
        os.replace(tmp, self.path)
