"""`modelyard-agent embed` and `ask`: embeddings and search over local documents.

    modelyard-agent embed REF TEXT... [--json]
    modelyard-agent ask REF --docs DIR QUESTION [--top K] [--json]

REF names a pulled feature-extraction version holding an ONNX model with tokenizer.json beside it
(scripts/export_minilm.py writes one). Both work offline: only the cache is read.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelyard_agent import refs, registry
from modelyard_agent.cache import Cache, Manifest
from modelyard_agent.config import Settings
from modelyard_agent.docindex import DocIndex, index_dir, scan, summary
from modelyard_agent.embed import Embedder, load_embedder
from modelyard_agent.errors import UsageError

TASK = "feature-extraction"
SHOWN_CHARS = 400


def open_model(settings: Settings, ref_text: str) -> tuple[Manifest, Embedder]:
    """The pulled feature-extraction version `ref_text` names, loaded; UsageError otherwise."""
    cache = Cache(settings.home)
    manifest = registry.find(cache, refs.parse(ref_text))
    if manifest is None:
        raise UsageError(f"{ref_text} is not in the cache ({settings.home}); pull it first")
    if manifest.task != TASK:
        raise UsageError(f"{manifest.ref} is a {manifest.task} model; embed and ask need a "
                         f"{TASK} version")
    onnx = registry.main_onnx(manifest.artifacts)
    if onnx is None:
        raise UsageError(f"{manifest.ref} holds no .onnx model")
    root = registry.materialise(cache, manifest)
    folder = root.joinpath(*[p for p in posixpath.dirname(onnx.path).split("/") if p])
    return manifest, load_embedder(folder)


def trim(text: str, limit: int = SHOWN_CHARS) -> str:
    """At most `limit` characters, cut at a word with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _warn(message: str) -> None:
    print(f"modelyard-agent: warning: {message}", file=sys.stderr)


def embed_command(args: argparse.Namespace, settings: Settings) -> int:
    """`embed`: print the vectors of the given texts."""
    manifest, embedder = open_model(settings, args.ref)
    vectors = embedder.embed(list(args.text))
    if args.json:
        print(json.dumps({"ref": manifest.ref, "dim": embedder.dim, "provider": embedder.provider,
                          "embeddings": [[float(x) for x in v] for v in vectors]}))
        return 0
    print(f"{manifest.ref}: dim {embedder.dim} on {embedder.provider}")
    for text, vector, tokens in zip(args.text, vectors,
                                    [embedder.count_tokens([t]) for t in args.text], strict=True):
        head = ", ".join(f"{x:+.4f}" for x in vector[:4])
        print(f"norm {float((vector ** 2).sum()) ** 0.5:.4f}, {tokens} token(s), [{head}, …] "
              f"{trim(text, 60)!r}")
    return 0


def check_docs(folder: Path) -> None:
    """Refuse a docs folder that is missing or holds no .txt/.md file."""
    if not folder.exists():
        raise UsageError(f"docs folder {folder} does not exist")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    if not scan(folder):
        raise UsageError(f"{folder} holds no .txt or .md files")


def ask_command(args: argparse.Namespace, settings: Settings) -> int:
    """`ask`: update the folder's index, then print the passages closest to the question."""
    if args.top < 1:
        raise UsageError("--top must be 1 or more")
    if not args.question.strip():
        raise UsageError("the question is empty")
    folder: Path = args.docs
    check_docs(folder)
    manifest, embedder = open_model(settings, args.ref)
    index = DocIndex(index_dir(settings.home, manifest.manifest_digest, folder),
                     manifest.manifest_digest, folder)
    stats = index.update(embedder, _warn)
    if not stats.passages:
        raise UsageError(f"{folder} holds no text to search")
    hits = index.search(embedder.embed([args.question])[0], args.top)
    if args.json:
        out: dict[str, Any] = {"ref": manifest.ref, "index": asdict(stats),
                               "results": [summary(h) for h in hits]}
        print(json.dumps(out))
        return 0
    sys.stdout.flush()
    print(stats.line(), file=sys.stderr, flush=True)
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.score:.3f}  {hit.passage.file}:{hit.passage.line}")
        print(f"   {trim(hit.passage.text)}")
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `embed` and `ask`."""
    s = sub.add_parser("embed", parents=[common], help="embed texts with a pulled feature-extraction version")
    s.add_argument("ref")
    s.add_argument("text", nargs="+", help="one or more texts")
    s.add_argument("--json", action="store_true", help="print the vectors as JSON")
    s.set_defaults(handler=embed_command)
    s = sub.add_parser("ask", parents=[common], help="find the passages of local .txt/.md files that answer a question")
    s.add_argument("ref")
    s.add_argument("question")
    s.add_argument("--docs", type=Path, required=True, help="folder of .txt and .md files (searched recursively)")
    s.add_argument("--top", type=int, default=3, help="passages to show (default 3)")
    s.add_argument("--json", action="store_true", help="print index stats and results as JSON")
    s.set_defaults(handler=ask_command)
