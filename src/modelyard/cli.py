"""The `modelyard` command: thin, builds Settings and calls the app or the services."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from modelyard.catalog.tokens import Scope
from modelyard.config import Settings
from modelyard.errors import ModelyardError

DEFAULT_SERVER = "http://127.0.0.1:8000"


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
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=_duration, metavar="N{d,h,m}",
                        help="the token stops working after this long, e.g. 90d, 12h, 30m")
    expiry.add_argument("--expires-at", type=_instant, metavar="ISO-8601",
                        help="the token stops working at this time, with a zone (2027-01-01T00:00Z)")
    listing = token_sub.add_parser("list", help="List tokens (names, scopes, namespaces; never secrets).")
    revoke = token_sub.add_parser("revoke", help="Revoke a token by name.")
    revoke.add_argument("name")
    collect = sub.add_parser("gc", help="Remove blobs no version references and stale uploads.")
    collect.add_argument("--dry-run", action="store_true", help="report what would go; change nothing")
    for leaf in (create, listing, revoke, collect):
        leaf.add_argument("--data-dir")
        leaf.add_argument("--database-url")
    _client_parsers(sub)
    return parser


def _client_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`push` and `download`: commands of the client, talking to a server over HTTP."""
    push = sub.add_parser("push", help="Upload a folder as the next version of a model.",
                          description="Hash the folder's files, upload the blobs the server lacks "
                          "(resuming an interrupted upload), then create the version.")
    push.add_argument("dir", help="folder to push (hidden files and *.partial are skipped)")
    push.add_argument("--model", required=True, help="model name (it must exist)")
    push.add_argument("--params", metavar="FILE", help="params: a JSON or YAML mapping of key to value")
    push.add_argument("--metrics", metavar="FILE", help="metrics: a JSON or YAML mapping of key to number")
    push.add_argument("--parent", action="append", default=[], metavar="REF", help="parent version (repeatable)")
    push.add_argument("--relation", action="append", default=[], metavar="R",
                      help="relation to the --parent at the same position, e.g. fine_tuned_from")
    push.add_argument("--dataset", action="append", default=[], metavar="NAME@V", help="trained on (repeatable)")
    push.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="tag (repeatable)")
    push.add_argument("--alias", help="point this alias at the new version")
    push.add_argument("--description-file", metavar="FILE", help="description (Markdown), e.g. README.md")
    download = sub.add_parser("download", help="Fetch every file of a version into a folder.",
                              description="Resumes from <file>.partial and checks each file's sha256.")
    download.add_argument("ref", help="name, name:3, name@alias or name@sha256:…")
    download.add_argument("dest", help="destination folder")
    for leaf in (push, download):
        leaf.add_argument("--server", default=os.environ.get("MODELYARD_SERVER") or DEFAULT_SERVER,
                          help="registry URL (default: $MODELYARD_SERVER or %(default)s)")
        leaf.add_argument("--token", default=os.environ.get("MODELYARD_TOKEN"),
                          help="bearer token (default: $MODELYARD_TOKEN)")
        leaf.add_argument("--parallel", type=int, default=4, help="transfers at once (default 4)")
        leaf.add_argument("--quiet", action="store_true", help="no progress bars or summary")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ModelyardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command in ("push", "download"):
        return _client_command(args)
    flags = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if args.command == "export-schema":
        from modelyard.graphql.schema import build_schema

        print(build_schema().as_str())
        return 0
    flags.pop("token_command", None)
    for key in ("name", "scope", "namespace", "dry_run"):
        flags.pop(key, None)
    settings = Settings.load(**flags)
    if args.command == "token":
        return asyncio.run(_token(args, settings))
    if args.command == "gc":
        return asyncio.run(_gc(settings, args.dry_run))
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


def _client_command(args: argparse.Namespace) -> int:
    """`modelyard push` and `modelyard download`, through `modelyard.client.Registry`."""
    from modelyard.client import Registry, UsageError
    from modelyard.client.inputs import load_file
    from modelyard.client.progress import duration, size

    try:
        with Registry(args.server, args.token) as registry:
            if args.command == "download":
                got = registry.download(args.ref, args.dest, parallel=args.parallel, progress=not args.quiet)
                print(f"{got.ref} {got.manifest_digest}")
                if not args.quiet:
                    print(f"downloaded {len(got.files)} files to {args.dest}: fetched {size(got.bytes_fetched)}, "
                          f"reused {size(got.bytes_reused)}, in {duration(got.seconds)}", file=sys.stderr)
                return 0
            if len(args.parent) != len(args.relation):
                raise UsageError("give one --relation for each --parent, in the same order")
            tags = dict(_pair(t) for t in args.tag)
            description = None
            if args.description_file:
                try:
                    description = open(args.description_file, encoding="utf-8").read()
                except OSError as exc:
                    raise UsageError(f"cannot read {args.description_file}: {exc.strerror or exc}") from exc
            result = registry.push(
                args.dir, args.model,
                params=load_file(args.params) if args.params else None,
                metrics=load_file(args.metrics) if args.metrics else None,
                tags=tags, parents=list(zip(args.parent, args.relation, strict=True)), datasets=args.dataset,
                alias=args.alias, description=description, parallel=args.parallel, progress=not args.quiet,
            )
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # what the client did not already turn into a UsageError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.ref} {result.manifest_digest}")
    if not args.quiet:
        rate = size(result.bytes_sent / result.seconds) if result.seconds > 0 else "-"
        alias = f"; {args.model}@{result.alias} -> {result.ref}" if result.alias else ""
        print(f"pushed {result.files} files ({size(result.total_bytes)}): sent {size(result.bytes_sent)} "
              f"({result.blobs_uploaded} blobs), {result.blobs_skipped} blobs already there "
              f"({size(result.bytes_skipped)}), resumed {size(result.bytes_resumed)}, "
              f"in {duration(result.seconds)} ({rate}/s){alias}", file=sys.stderr)
    return 0


def _pair(text: str) -> tuple[str, str]:
    from modelyard.client import UsageError

    key, eq, value = text.partition("=")
    if not key or not eq:
        raise UsageError(f"a tag is KEY=VALUE, not {text!r}")
    return key, value




def _duration(text: str) -> timedelta:
    """`90d`, `12h` or `30m` as a timedelta (argparse type)."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not (number.isascii() and number.isdigit()) or not 0 < int(number) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number and d, h or m (90d, 12h, 30m)")
    return timedelta(**{units[unit]: int(number)})


def _instant(text: str) -> datetime:
    """An ISO 8601 time with its zone (argparse type)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2027-01-01T00:00Z")
    return value


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
            expires = args.expires_at or (datetime.now(UTC) + args.expires_in if args.expires_in else None)
            secret, row = await tokens.create_token(args.name, Scope(args.scope), args.namespace,
                                                    actor=actor, expires_at=expires)
            print(secret)
            where = f" in namespace {row.namespace!r}" if row.namespace else ""
            until = f", expires {row.expires_at:%Y-%m-%d %H:%M}Z" if row.expires_at else ""
            print(f"created token {row.name!r} with scope {row.scope}{where}{until}; "
                  "the secret above is shown only now", file=sys.stderr)
        elif args.token_command == "list":
            now = datetime.now(UTC)
            for row in await tokens.list_tokens():
                if row.revoked_at:
                    state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}"
                elif row.expires_at and row.expires_at <= now:
                    state = f"expired {row.expires_at:%Y-%m-%d %H:%M}"
                else:
                    state = f"active, expires {row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "active"
                used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
                print(f"{row.name}\t{row.scope}\t{row.namespace or '-'}\t{row.prefix}…\t{state}\t{used}")
        else:
            row = await tokens.revoke_token(args.name, actor=actor)
            print(f"revoked token {row.name!r}", file=sys.stderr)
    finally:
        await close_database()
    return 0

async def _gc(settings: Settings, dry_run: bool) -> int:
    """`modelyard gc [--dry-run]`: collect unreferenced blobs; print the bytes freed."""
    from modelyard.catalog.gc import collect
    from modelyard.db.database import close_database, open_database
    from modelyard.storage import open_store

    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_storage_url, **settings.s3_options())
    await open_database(settings.resolved_database_url)
    try:
        async with store:
            report = await collect(store, settings.upload_grace_seconds, dry_run)
    finally:
        await close_database()
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
