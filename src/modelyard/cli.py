"""The `modelyard` command: thin, builds Settings and calls the app or the services."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import sys
from collections.abc import Sequence

from modelyard.catalog.tokens import Scope
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
    token = sub.add_parser("token", help="Create, list and revoke access tokens.")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="Create a token and print its secret (shown once).")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", required=True, choices=[s.value for s in Scope])
    create.add_argument("--namespace", help="bind the token to one namespace")
    listing = token_sub.add_parser("list", help="List tokens (names, scopes, namespaces; never secrets).")
    revoke = token_sub.add_parser("revoke", help="Revoke a token by name.")
    revoke.add_argument("name")
    for leaf in (create, listing, revoke):
        leaf.add_argument("--data-dir")
        leaf.add_argument("--database-url")
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
    flags.pop("token_command", None)
    for key in ("name", "scope", "namespace"):
        flags.pop(key, None)
    settings = Settings.load(**flags)
    if args.command == "token":
        return asyncio.run(_token(args, settings))
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


async def _token(args: argparse.Namespace, settings: Settings) -> int:
    """`modelyard token create|list|revoke` against the catalog database."""
    from modelyard.catalog import tokens
    from modelyard.db.database import close_database, open_database

    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await open_database(settings.resolved_database_url)
    actor = f"cli:{getpass.getuser()}"
    try:
        if args.token_command == "create":
            secret, row = await tokens.create_token(args.name, Scope(args.scope), args.namespace, actor=actor)
            print(secret)
            where = f" in namespace {row.namespace!r}" if row.namespace else ""
            print(f"created token {row.name!r} with scope {row.scope}{where}; "
                  "the secret above is shown only now", file=sys.stderr)
        elif args.token_command == "list":
            for row in await tokens.list_tokens():
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                print(f"{row.name}\t{row.scope}\t{row.namespace or '-'}\t{row.prefix}…\t{state}")
        else:
            row = await tokens.revoke_token(args.name, actor=actor)
            print(f"revoked token {row.name!r}", file=sys.stderr)
    finally:
        await close_database()
    return 0
