"""The `modelyard` command: thin, builds Settings and calls the app or the services."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

from modelyard.config import Settings
from modelyard.errors import ModelyardError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelyard", description="A model registry that knows where every model came from.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Run the server (GraphQL at /graphql).")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--data-dir", help="data folder for SQLite and blobs (default ./data)")
    serve.add_argument("--database-url", help="sqlite:///file.db or postgres://user@host/db")
    migrate = sub.add_parser("migrate", help="Apply database migrations and exit.")
    migrate.add_argument("--data-dir")
    migrate.add_argument("--database-url")
    sub.add_parser("export-schema", help="Print the GraphQL schema (SDL).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ModelyardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if args.command == "export-schema":
        from modelyard.graphql.schema import build_schema

        print(build_schema().as_str())
        return 0
    settings = Settings.load(**flags)
    if args.command == "migrate":
        from modelyard.db.database import migrate

        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(migrate(settings.resolved_database_url))
        print(f"migrated {settings.resolved_database_url.split('@')[-1]}")
        return 0
    import uvicorn

    from modelyard.app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"modelyard serving GraphQL at http://{settings.host}:{settings.port}/graphql", flush=True)
    app = create_app(settings)
    # Modules, schema and app live as long as the process: keep them out of the collector's full
    # passes (52 ms each; they made the p95 tail of every benchmark in scripts/bench/catalog.py).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
