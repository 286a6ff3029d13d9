"""`modelyard-agent chat REF`: talk to a pulled text-generation version.

With --prompt it answers once; otherwise a REPL keeps the conversation (and its KV cache) across
turns. A line ending in a backslash continues on the next line, and a `\"\"\"` line opens a block
that a `\"\"\"` line closes. Ctrl+C during a reply stops that reply (what was said so far stays
in the history); at the prompt, Ctrl+C or EOF leaves.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from modelyard_agent import refs, registry
from modelyard_agent.cache import Cache, Manifest
from modelyard_agent.config import Settings
from modelyard_agent.errors import UsageError
from modelyard_agent.generate import Completion, Conversation, Generator, Sampling, load_generator

HELP = """commands:
  /set temperature F   0 is greedy (also: top_p F in (0, 1], top_k N (0 = off), max_tokens N >= 1)
  /clear               forget the conversation
  /help                this text
  /bye                 leave (so do EOF and Ctrl+C at the prompt)
a line ending in \\ continues on the next line; \"\"\" on its own line opens and closes a block;
Ctrl+C during a reply stops the reply."""
SETTABLE = {"temperature": float, "top_p": float, "top_k": int, "max_tokens": int, "seed": int}


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `chat`."""
    s = sub.add_parser("chat", parents=[common], help="talk to a pulled text-generation version")
    s.add_argument("ref")
    s.add_argument("--prompt", help="answer this once and exit (default: an interactive chat)")
    s.add_argument("--system", help="a system message to start the conversation with")
    defaults = Sampling()
    s.add_argument("--temperature", type=float, default=defaults.temperature, help="0 is greedy")
    s.add_argument("--top-p", type=float, default=defaults.top_p)
    s.add_argument("--top-k", type=int, default=defaults.top_k, help="0 turns it off")
    s.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    s.add_argument("--seed", type=int, default=None, help="make sampling reproducible")
    s.add_argument("--backend", choices=["onnxruntime", "onnxruntime-genai"],
                   help="default: onnxruntime-genai when the version has genai_config.json")
    s.set_defaults(handler=handle)


def chat_version(cache: Cache, text: str) -> tuple[Manifest, Path]:
    """A pulled text-generation version and the materialised folder of its model."""
    manifest = registry.find(cache, refs.parse(text))
    if manifest is None:
        raise UsageError(f"{text} is not in the cache; pull it first")
    if manifest.task != "text-generation":
        raise UsageError(f"{manifest.ref} is a {manifest.task} model, not text-generation: use "
                         "`modelyard-agent embed` or `ask` for embeddings, `run` for other models")
    root = registry.materialise(cache, manifest)
    onnx = registry.main_onnx(manifest.artifacts)
    return manifest, (root.joinpath(*onnx.path.split("/")).parent if onnx is not None else root)


def model_folder(cache: Cache, text: str) -> Path:
    """The materialised folder of a pulled text-generation version's model."""
    return chat_version(cache, text)[1]


def load_chat(settings: Settings, text: str, backend: str | None = None) -> tuple[Manifest, Generator]:
    """A pulled text-generation version, loaded for chat."""
    manifest, folder = chat_version(Cache(settings.home), text)
    return manifest, load_generator(folder, backend=backend)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    """Run `chat`: one answer with --prompt, else the REPL."""
    sampling = Sampling(args.temperature, args.top_p, args.top_k, args.max_tokens, args.seed).check()
    folder = model_folder(Cache(settings.home), args.ref)
    try:
        generator = load_generator(folder, backend=args.backend)
    except KeyboardInterrupt:
        return 130
    out = sys.stdout
    if args.prompt is not None:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        completion = generator.complete(messages + [{"role": "user", "content": args.prompt}], sampling)
        stopped = stream(completion, out)
        out.write("\n")
        out.flush()
        return 130 if stopped else 0
    return repl(generator, sampling, args.ref, args.system, sys.stdin, out)


def stream(completion: Completion, out: TextIO) -> bool:
    """Write a reply as it comes; Ctrl+C cancels it. Whether it was cancelled."""
    interrupted = threading.Event()

    def stop() -> None:
        interrupted.set()
        completion.cancel()

    with _on_sigint(stop):
        for delta in completion:
            out.write(delta)
            out.flush()
    return interrupted.is_set()


@contextmanager
def _on_sigint(action: Callable[[], None]) -> Iterator[None]:
    """Call `action` instead of raising KeyboardInterrupt while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: action())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def read_message(inp: TextIO, out: TextIO) -> str | None:
    """One message from the user: continued lines joined; None at EOF."""
    lines: list[str] = []
    block = False
    prompt = ">>> "
    while True:
        line = _read_line(prompt, inp, out)
        if line is None:
            return "\n".join(lines) if lines else None
        if line.strip() == '"""':
            if block or lines:
                return "\n".join(lines)
            block, prompt = True, "... "
            continue
        if not block and line.endswith("\\"):
            lines.append(line[:-1])
            prompt = "... "
            continue
        lines.append(line)
        if not block:
            return "\n".join(lines)


def _read_line(prompt: str, inp: TextIO, out: TextIO) -> str | None:
    """One line without its newline, None at EOF; with line editing on a terminal."""
    if inp is sys.stdin and out is sys.stdout and inp.isatty():
        import readline  # noqa: F401  (gives input() editing and history)

        try:
            return input(prompt)
        except EOFError:
            return None
    out.write(prompt)
    out.flush()
    line = inp.readline()
    return line.removesuffix("\n") if line else None


def set_option(sampling: Sampling, words: list[str]) -> Sampling:
    """`sampling` with one `/set NAME VALUE` applied; UsageError for bad names or values."""
    if len(words) != 2 or words[0].replace("-", "_") not in SETTABLE:
        raise UsageError(f"usage: /set {{{','.join(SETTABLE)}}} VALUE")
    name = words[0].replace("-", "_")
    try:
        value = SETTABLE[name](words[1])
    except ValueError:
        raise UsageError(f"{name} needs a {SETTABLE[name].__name__}, not {words[1]!r}") from None
    return dataclasses.replace(sampling, **{name: value}).check()


def repl(generator: Generator, sampling: Sampling, ref: str, system: str | None,
         inp: TextIO, out: TextIO) -> int:
    """The interactive chat; exit status 0 at /bye, EOF or Ctrl+C at the prompt."""
    conversation: Conversation = generator.conversation(system)
    out.write(f"{ref}: {generator.backend} on {generator.provider}; /help for commands, /bye to leave\n")
    while True:
        try:
            text = read_message(inp, out)
        except KeyboardInterrupt:
            out.write("\n")
            return 0
        if text is None:
            out.write("\n")
            return 0
        command = text.strip()
        if not command:
            continue
        if command.startswith("/"):
            words = command.split()
            if words[0] == "/bye":
                return 0
            if words[0] == "/help":
                out.write(HELP + "\n")
            elif words[0] == "/clear":
                conversation.clear()
                out.write("cleared the conversation\n")
            elif words[0] == "/set":
                try:
                    sampling = set_option(sampling, words[1:])
                    out.write(f"set {words[1].replace('-', '_')} = {words[2]}\n")
                except UsageError as exc:
                    print(f"error: {exc}", file=sys.stderr)
            else:
                print(f"error: unknown command {words[0]}; /help lists them", file=sys.stderr)
            continue
        try:
            completion = conversation.say(text, sampling)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        if stream(completion, out):
            out.write(" [stopped]")
        out.write("\n")
        out.flush()
