"""Settings: the cache home, the config file, and server/token from file, env and flags."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8000"


def agent_home(env: Mapping[str, str]) -> Path:
    """The cache directory: `MODELYARD_AGENT_HOME`, else `$XDG_CACHE_HOME/modelyard-agent`."""
    if env.get("MODELYARD_AGENT_HOME"):
        return Path(env["MODELYARD_AGENT_HOME"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelyard-agent"


def config_path(env: Mapping[str, str]) -> Path:
    """The one config file: inside `MODELYARD_AGENT_HOME` when set, else the XDG config dir."""
    if env.get("MODELYARD_AGENT_HOME"):
        return Path(env["MODELYARD_AGENT_HOME"]) / "config.json"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelyard-agent" / "config.json"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, read once."""

    home: Path
    config_file: Path
    server: str
    token: str | None
    offline: bool = False
    # Beyond loopback: host names and web origins `serve` answers (see guard.py).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # The assistant: the pulled versions `ask` and `serve --docs` use unless told otherwise.
    embedder: str | None = None
    chat_model: str | None = None


def read_config(path: Path) -> dict[str, str]:
    """The saved settings; empty when there is no file yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_config(path: Path, values: dict[str, str]) -> None:
    """Save settings readable by the owner only (the token is a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    # Created 0600 from the start so the token is never readable by others, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load(env: Mapping[str, str], *, server: str | None = None, token: str | None = None,
         offline: bool = False) -> Settings:
    """Settings from the config file, overridden by env, overridden by flags."""
    path = config_path(env)
    saved = read_config(path)
    return Settings(
        home=agent_home(env),
        config_file=path,
        server=(server or env.get("MODELYARD_SERVER") or saved.get("server") or DEFAULT_SERVER).rstrip("/"),
        token=token or env.get("MODELYARD_TOKEN") or saved.get("token") or None,
        offline=offline or env.get("MODELYARD_AGENT_OFFLINE", "") in ("1", "true"),
        allowed_hosts=_list(env.get("MODELYARD_AGENT_ALLOWED_HOSTS") or saved.get("allowed_hosts")),
        allowed_origins=_list(env.get("MODELYARD_AGENT_ALLOWED_ORIGINS") or saved.get("allowed_origins")),
        embedder=env.get("MODELYARD_AGENT_EMBEDDER") or saved.get("embedder") or None,
        chat_model=env.get("MODELYARD_AGENT_CHAT") or saved.get("chat") or None,
    )


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated setting as its items."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())
