"""Settings: every MODELYARD_* variable, read once, typed, with its default and one-line doc.

Precedence: CLI flags, then environment variables, then the defaults below.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidError

_DB_SCHEMES = ("sqlite://", "postgres://", "postgresql://")


def _default_data_dir() -> Path:
    return Path("./data")


@dataclass(frozen=True)
class Settings:
    """Server settings. Each field's `doc` metadata is shown in the README's settings table."""

    host: str = field(default="127.0.0.1", metadata={"doc": "Address to bind; loopback unless told otherwise."})
    port: int = field(default=8000, metadata={"doc": "TCP port of the HTTP server."})
    data_dir: Path = field(
        default_factory=_default_data_dir,
        metadata={"doc": "Folder for the embedded SQLite file and the local blob store."},
    )
    database_url: str = field(
        default="",
        metadata={"doc": "Catalog database: `sqlite:///path.db` or `postgres://user@host:5432/db`; "
                  "empty means `<data_dir>/modelyard.db`."},
    )
    log_level: str = field(default="info", metadata={"doc": "Server log level (debug, info, warning, error)."})
    max_page_size: int = field(default=100, metadata={"doc": "Largest `first` a connection accepts."})
    max_depth: int = field(default=12, metadata={"doc": "Deepest GraphQL selection accepted."})
    max_tokens: int = field(default=4000, metadata={"doc": "Most lexical tokens in one GraphQL document."})
    max_aliases: int = field(default=30, metadata={"doc": "Most field aliases in one GraphQL document."})
    max_cost: int = field(
        default=50000,
        metadata={"doc": "Largest estimated number of objects one GraphQL request may return."},
    )
    max_graphql_body: int = field(
        default=2 * 1024**2,
        metadata={"doc": "Largest `/graphql` request body, in bytes; a larger one answers 413 as soon "
                  "as its `Content-Length` or its streamed bytes pass the limit."},
    )
    auth_failures_per_minute: int = field(
        default=30,
        metadata={"doc": "Failed authentications one client address may make per minute; then every "
                  "request from it that carries a token answers 429 with `Retry-After` (counted per "
                  "server process; 0: no limit)."},
    )
    uploads_per_minute: int = field(
        default=120,
        metadata={"doc": "Uploads (`POST /api/uploads`) one client address may start per minute before "
                  "429 with `Retry-After` (counted per server process; 0: no limit)."},
    )
    max_lineage_depth: int = field(default=100, metadata={"doc": "Deepest `depth` a lineage walk accepts."})
    storage_url: str = field(
        default="",
        metadata={"doc": "Blob store: a folder path, `file:///path` or `s3://bucket/prefix`; empty "
                  "means `<data_dir>/blobs`."},
    )
    s3_endpoint_url: str = field(default="", metadata={"doc": "S3-compatible endpoint (empty: AWS)."})
    s3_region: str = field(default="", metadata={"doc": "S3 region (empty: the client default)."})
    s3_access_key: str = field(default="", metadata={"doc": "S3 access key id."})
    s3_secret_key: str = field(default="", repr=False, metadata={"doc": "S3 secret key. Never logged."})
    max_blob_size: int = field(
        default=256 * 1024**3, metadata={"doc": "Largest blob, in bytes, an upload may store."}
    )
    redirect_downloads: bool = field(
        default=True,
        metadata={"doc": "On S3, answer blob downloads with a redirect to a presigned URL."},
    )
    body_timeout_seconds: float = field(
        default=60.0,
        metadata={"doc": "An upload whose client sends nothing for this long is cut off (its "
                  "bytes so far stay staged) instead of holding the upload forever."},
    )
    presign_seconds: int = field(default=3600, metadata={"doc": "How long a presigned download URL lives."})
    upload_grace_seconds: int = field(
        default=86400,
        metadata={"doc": "`modelyard gc` leaves uploads and unreferenced blobs younger than this; an "
                  "upload idle this long also expires when its token reaches `MODELYARD_MAX_OPEN_UPLOADS`."},
    )
    max_open_uploads: int = field(
        default=100,
        metadata={"doc": "Most resumable uploads one token may hold open; at the limit its uploads "
                  "idle for `MODELYARD_UPLOAD_GRACE_SECONDS` expire, else `POST /api/uploads` answers LIMIT."},
    )
    public_read: bool = field(
        default=True,
        metadata={"doc": "Reads need no token (`false`: every read needs a `read` token)."},
    )
    admin_token: str = field(
        default="",
        repr=False,
        metadata={"doc": "Seeds an admin token named `admin-env` with this secret (`myd_…`), for "
                  "automation; only its hash is stored. Never logged."},
    )
    max_subscriptions: int = field(
        default=20, metadata={"doc": "Most live subscriptions one token (or one anonymous client) may hold."}
    )
    event_poll_seconds: float = field(
        default=2.0,
        metadata={"doc": "How often subscribers also poll the audit log (catches writes from "
                  "other processes on SQLite; PostgreSQL wakes them at once with NOTIFY)."},
    )

    def __post_init__(self) -> None:
        if self.database_url and not self.database_url.startswith(_DB_SCHEMES):
            raise InvalidError(
                f"MODELYARD_DATABASE_URL must start with one of {', '.join(_DB_SCHEMES)}; "
                f"got {self.database_url.split('://')[0]}://…"
            )
        if not 0 < self.port < 65536:
            raise InvalidError(f"port must be between 1 and 65535, got {self.port}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise InvalidError(f"unknown log level {self.log_level!r}")
        if self.max_graphql_body < 1 or min(self.auth_failures_per_minute, self.uploads_per_minute) < 0:
            raise InvalidError("max_graphql_body must be positive and the per-minute limits at least 0")
        if self.max_open_uploads < 1:
            raise InvalidError(f"max_open_uploads must be at least 1, got {self.max_open_uploads}")

    @property
    def resolved_storage_url(self) -> str:
        """The blob store URL, defaulting to a folder inside the data dir."""
        return self.storage_url or str((self.data_dir / "blobs").resolve())

    def s3_options(self) -> dict[str, str | None]:
        """Keyword arguments for an S3 store (ignored by a local one)."""
        return {
            "endpoint_url": self.s3_endpoint_url or None,
            "region": self.s3_region or None,
            "access_key": self.s3_access_key or None,
            "secret_key": self.s3_secret_key or None,
        }

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite://{(self.data_dir / 'modelyard.db').resolve()}"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides (flags), then `MODELYARD_*` variables, then defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = overrides.get(f.name)
            if raw is None:
                raw = env.get(f"MODELYARD_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f, raw)
        return cls(**values)

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """(variable, default, doc) for every setting, for the README."""
        out = []
        for f in fields(cls):
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            shown = str(default).lower() if isinstance(default, bool) else str(default)
            out.append((f"MODELYARD_{f.name.upper()}", shown, f.metadata["doc"]))
        return out


def _coerce(f: dataclasses.Field[Any], raw: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return text in ("1", "true", "yes")
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
        if kind == "Path":
            return Path(raw)
        return str(raw)
    except ValueError as exc:
        shown = "…" if not f.repr else repr(raw)
        raise InvalidError(f"setting {f.name} must be of type {kind}, got {shown}") from exc
