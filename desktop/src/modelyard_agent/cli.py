"""`modelyard-agent`: thin command line over pull and the cache; errors exit 2 with one line.

Start-up stays light (`ls` and `--help` load no numpy, ONNX Runtime, starlette, uvicorn or
HTTP client): each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from modelyard_agent import config, manage, serving
from modelyard_agent.cache import Cache
from modelyard_agent.errors import AgentError, UsageError
from modelyard_agent.progress import human

# Commands other modules define: `add_commands(sub, common)` registers parsers whose defaults
# carry `handler(args, settings) -> exit status`. Only the module of the command being run is
# imported; `--help` lists the others by these lines (a test holds them equal to the modules').
COMMAND_MODULES: dict[str, dict[str, str]] = {
    "modelyard_agent.chat": {"chat": "talk to a pulled text-generation version"},
    "modelyard_agent.assist": {
        "embed": "embed texts with a pulled feature-extraction version",
        "ask": "answer a question from local .txt/.md files, citing them (or list passages)",
    },
    "modelyard_agent.follow": {"follow": "pull each new version an alias moves to, until Ctrl+C"},
}


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every command; of those in COMMAND_MODULES, only `command`'s
    module is loaded (the others are listed, and parse nothing)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", help="registry URL (default: config file, $MODELYARD_SERVER)")
    common.add_argument("--token", help="bearer token (prefer $MODELYARD_TOKEN or `login`)")
    common.add_argument("--offline", action="store_true", help="never touch the network")
    p = argparse.ArgumentParser(prog="modelyard-agent",
                                description="Pull modelyard model versions into a verified local cache.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("pull", parents=[common], help="fetch a version into the cache")
    s.add_argument("ref")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    sub.add_parser("login", parents=[common], help="save server and token in the config file")
    s = sub.add_parser("ls", parents=[common], help="pulled versions")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("rm", parents=[common], help="forget a pulled version")
    s.add_argument("ref")
    s = sub.add_parser("gc", parents=[common], help="remove blobs no version uses, stale partials")
    s.add_argument("--dry-run", action="store_true")
    sub.add_parser("verify", parents=[common], help="re-hash every cached blob")
    sub.add_parser("outdated", parents=[common], help="pulled aliases that moved on the server")
    s = sub.add_parser("export", parents=[common], help="write a version to a tar file")
    s.add_argument("ref")
    s.add_argument("file", type=Path)
    s = sub.add_parser("import", parents=[common], help="read a tar written by export")
    s.add_argument("file", type=Path)
    s = sub.add_parser("serve", parents=[common], help="serve pulled ONNX versions over OIP V2 REST")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    s.add_argument("--port", type=int, default=serving.DEFAULT_PORT)
    s.add_argument("--idle-ttl", type=float, default=serving.DEFAULT_IDLE_TTL,
                   help="seconds before an unused model is unloaded")
    s.add_argument("--follow", action="append", default=[], metavar="NAME@ALIAS",
                   help="serve the version the alias names, switching as it moves (repeatable)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="answer this Host name too, beside loopback (repeatable; default: "
                        "$MODELYARD_AGENT_ALLOWED_HOSTS)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from this origin (scheme://host[:port]) call the server, with "
                        "CORS (repeatable; default: $MODELYARD_AGENT_ALLOWED_ORIGINS)")
    s.add_argument("--docs", type=Path, help="folder of .txt/.md files that POST /v1/ask and the chat page's "
                                             "\"ask my files\" answer from (default: none)")
    s.add_argument("--embedder", help="pulled feature-extraction ref for --docs (default: $MODELYARD_AGENT_EMBEDDER, "
                                      "or the only one pulled)")
    s = sub.add_parser("run", parents=[common], help="run a pulled ONNX version once, offline")
    s.add_argument("ref")
    s.add_argument("--input", type=Path, required=True, help="OIP-shaped .json, or .npy for one input")
    s.add_argument("--output-format", choices=["json"], default="json")
    for module, commands in COMMAND_MODULES.items():
        if command in commands:
            importlib.import_module(module).add_commands(sub, common)
        else:
            for name, line in commands.items():
                sub.add_parser(name, help=line)
    return p


def run(args: argparse.Namespace, settings: config.Settings) -> int:
    """Run one parsed command."""
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args, settings))
    cache = Cache(settings.home)
    if args.command == "pull":
        from modelyard_agent.pull import pull

        result = pull(settings, args.ref)
        if args.json:
            print(json.dumps(result.summary()))
        else:
            how = "from the cache (offline)" if result.offline else (
                f"fetched {human(result.bytes_fetched)}, resumed {human(result.bytes_resumed)}, "
                f"{result.blobs_cached} blob(s) already cached")
            print(f"{result.manifest.ref} {result.manifest.manifest_digest}: {how}")
    elif args.command == "login":
        if not args.server and not args.token:
            raise UsageError("login needs --server and/or --token")
        saved = config.read_config(settings.config_file)
        saved.update({k: v for k, v in (("server", args.server), ("token", args.token)) if v})
        config.write_config(settings.config_file, saved)
        print(f"saved to {settings.config_file}")
    elif args.command == "ls":
        rows = manage.ls(cache)
        if args.json:
            print(json.dumps([r.__dict__ for r in rows]))
        elif rows:
            width = max(len(r.ref) for r in rows)
            print(f"{'REF':<{width}}  {'LOADED':<6}  {'DIGEST':<19}  {'SIZE':>10}  {'SHARED':>10}  "
                  f"{'PULLED AT':<25}  PULLED AS")
            for r in rows:
                print(f"{r.ref:<{width}}  {'yes' if r.loaded else '-':<6}  {r.manifest_digest[:19]}  "
                      f"{human(r.size):>10}  {human(r.shared):>10}  {r.pulled_at:<25}  "
                      f"{','.join(r.pulled_as)}{'' if r.complete else '  INCOMPLETE'}")
        else:
            print("nothing pulled yet: `modelyard-agent pull REF`")
    elif args.command == "rm":
        from modelyard_agent import registry

        serving.refuse_if_served(settings.home, args.ref)
        removed = manage.rm(cache, args.ref)
        registry.forget(cache, removed)
        print(f"removed {removed.ref}; `gc` frees its unshared blobs")
    elif args.command == "gc":
        done = manage.gc(cache, dry_run=args.dry_run)
        verb = "would free" if args.dry_run else "freed"
        for name in done.blobs + done.partials:
            print(name)
        print(f"{verb} {done.bytes_freed} bytes ({len(done.blobs)} blob(s), {len(done.partials)} partial(s))")
    elif args.command == "verify":
        bad = manage.verify(cache)
        for digest in bad:
            print(f"CORRUPT {digest}: quarantined; the next pull fetches it again")
        print(f"{len(bad)} corrupt blob(s)")
        return 1 if bad else 0
    elif args.command == "outdated":
        for m in manage.outdated(cache, settings):
            print(f"{m.pulled_as}: cached {m.cached}, server {m.server or 'gone'}")
    elif args.command == "export":
        from modelyard_agent import archive

        print(f"exported {archive.export(cache, args.ref, args.file).ref} to {args.file}")
    elif args.command == "import":
        from modelyard_agent import archive

        print(f"imported {archive.import_(cache, args.file).ref}")
    elif args.command == "serve":
        from modelyard_agent import serve
        from modelyard_agent.guard import Access

        access = Access.build(args.allow_host or settings.allowed_hosts,
                              args.allow_origin or settings.allowed_origins, bound=args.host)
        from modelyard_agent.ask_api import Assistant
        from modelyard_agent.assist import check_docs

        if args.docs is not None:
            check_docs(args.docs)
        assistant = Assistant(settings.home, args.docs.resolve() if args.docs else None,
                              args.embedder or settings.embedder)
        serve.serve(cache, args.host, args.port, args.idle_ttl, follow=args.follow, settings=settings,
                    access=access, assistant=assistant)
    elif args.command == "run":
        from modelyard_agent.run import run as run_model

        print(run_model(cache, args.ref, args.input))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `modelyard-agent`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # The parser's only own option is -h: the first other word is the command (or a typo).
    command = next((word for word in argv if not word.startswith("-")), None)
    args = parser(command).parse_args(argv)
    settings = config.load(os.environ, server=args.server, token=args.token, offline=args.offline)
    try:
        return run(args, settings)
    except AgentError as exc:
        print(f"modelyard-agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modelyard-agent: interrupted; run the pull again to resume", file=sys.stderr)
        return 130
