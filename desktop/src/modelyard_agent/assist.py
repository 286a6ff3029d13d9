"""`modelyard-agent embed` and `ask`: embeddings, search and grounded answers over local documents.

    modelyard-agent embed REF TEXT... [--json]
    modelyard-agent ask EMBEDDER QUESTION --docs DIR [--chat REF] [--top K] [--no-answer] [--json]

EMBEDDER names a pulled feature-extraction version holding an ONNX model with tokenizer.json
beside it (scripts/export_minilm.py writes one); --chat a pulled text-generation version
(default: `MODELYARD_AGENT_CHAT`, or `chat` in the config file). With a chat model `ask` answers from the passages it
found and cites them (answer.py); without one, or with --no-answer, it lists the passages.
Everything works offline: only the cache is read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import posixpath
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelyard_agent import answer, refs, registry
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
    """`ask`: update the folder's index; answer from the passages it finds, or list them."""
    embedder_ref: str = args.ref
    question: str = args.question
    if args.top < 1:
        raise UsageError("--top must be 1 or more")
    if not question.strip():
        raise UsageError("the question is empty")
    folder: Path = args.docs
    check_docs(folder)
    chat_ref = None if args.no_answer else (args.chat or settings.chat_model)
    manifest, embedder = open_model(settings, embedder_ref)
    index = DocIndex(index_dir(settings.home, manifest.manifest_digest, folder),
                     manifest.manifest_digest, folder)
    stats = index.update(embedder, _warn)
    if not stats.passages:
        raise UsageError(f"{folder} holds no text to search")
    if chat_ref is None:
        return _passages(args, manifest.ref, stats, index.search(embedder.embed([question])[0], args.top))
    return _answer(args, settings, chat_ref, question, index, embedder, stats)


def _passages(args: argparse.Namespace, ref: str, stats: Any, hits: list[Any]) -> int:
    if args.json:
        print(json.dumps({"ref": ref, "index": asdict(stats), "results": [summary(h) for h in hits]}))
        return 0
    sys.stdout.flush()
    print(stats.line(), file=sys.stderr, flush=True)
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.score:.3f}  {hit.passage.file}:{hit.passage.line}")
        print(f"   {trim(hit.passage.text)}")
    return 0


def _answer(args: argparse.Namespace, settings: Settings, chat_ref: str, question: str,
            index: DocIndex, embedder: Embedder, stats: Any) -> int:
    """Stream a grounded answer, then its sources; Ctrl+C stops the answer."""
    from modelyard_agent.chat import load_chat

    sampling = dataclasses.replace(answer.SAMPLING, temperature=args.temperature, max_tokens=args.max_tokens,
                                   seed=args.seed).check()
    sources = answer.retrieve(index, embedder, question, args.top, args.min_score)
    chat_manifest, generator = load_chat(settings, chat_ref) if sources else (None, None)
    grounding = (answer.build_prompt(generator, question, sources, sampling.max_tokens)
                 if generator is not None else answer.Grounding(question, []))
    if not args.json:
        print(stats.line(), file=sys.stderr, flush=True)
    text: list[str] = []
    done: dict[str, Any] = {}
    try:
        for event in answer.events(generator, grounding, sampling):
            if event["type"] == "delta":
                text.append(event["content"])
                if not args.json:
                    sys.stdout.write(event["content"])
                    sys.stdout.flush()
            elif event["type"] == "done":
                done = event
    except KeyboardInterrupt:
        done = {"cited": answer.cited("".join(text), grounding.sources), "attributed": False,
                "grounded": bool(grounding.sources), "finish_reason": "interrupted"}
    if args.json:
        print(json.dumps({"question": question, "answer": "".join(text),
                          "chat": chat_manifest.ref if chat_manifest else None,
                          "embedder": index.model_digest, "index": asdict(stats),
                          "sources": [asdict(s) for s in grounding.sources], **done}))
        return 0
    print()
    if grounding.sources:
        numbers = set(done.get("cited") or [])
        how = ("the answer cites none of them" if not numbers else
               "the model cited none; * = matched to the answer by content" if done.get("attributed") else "* = cited")
        print(f"\nsources given to {chat_manifest.ref if chat_manifest else 'the model'} ({how}):")
        for s in grounding.sources:
            mark = "*" if s.n in numbers else " "
            print(f"{mark}[{s.n}] {s.file}:{s.line}  {s.score:.3f}  {trim(s.text, 100)}")
    return 130 if done.get("finish_reason") == "interrupted" else 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `embed` and `ask`."""
    s = sub.add_parser("embed", parents=[common], help="embed texts with a pulled feature-extraction version")
    s.add_argument("ref")
    s.add_argument("text", nargs="+", help="one or more texts")
    s.add_argument("--json", action="store_true", help="print the vectors as JSON")
    s.set_defaults(handler=embed_command)
    s = sub.add_parser("ask", parents=[common],
                       help="answer a question from local .txt/.md files, citing them (or list passages)")
    s.add_argument("ref", help="a pulled feature-extraction version (the embedder)")
    s.add_argument("question")
    s.add_argument("--docs", type=Path, required=True, help="folder of .txt and .md files (searched recursively)")
    s.add_argument("--chat", help="a pulled text-generation ref that answers (default: $MODELYARD_AGENT_CHAT "
                                  "or `chat` in the config file; none: list passages)")
    s.add_argument("--no-answer", action="store_true", help="only list the passages found")
    s.add_argument("--top", type=int, default=3, help="passages to use or show (default 3)")
    s.add_argument("--min-score", type=float, default=answer.MIN_SCORE,
                   help=f"cosine under which a passage is not about the question (default {answer.MIN_SCORE})")
    s.add_argument("--temperature", type=float, default=answer.SAMPLING.temperature,
                   help=f"0 is greedy (default {answer.SAMPLING.temperature}, with top_p {answer.SAMPLING.top_p})")
    s.add_argument("--max-tokens", type=int, default=answer.SAMPLING.max_tokens)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(handler=ask_command)
