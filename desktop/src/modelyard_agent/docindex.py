"""A semantic index of a folder's .txt and .md files, cached and updated file by file.

Passages: a file is split into blocks at blank lines and, in Markdown, before every heading (fenced
code stays whole). A heading alone joins the block after it, so the passage carries its topic.
Blocks over MAX_WORDS words are cut into passages of at most MAX_WORDS words, at a line end when
one falls in the second half of the window. Whitespace is collapsed. Each passage keeps its file
(relative, `/`-separated) and the 1-based line it starts on.

The index of one model and one folder lives in

    <home>/indexes/<sha256(model manifest digest, absolute folder)>/index.npz

holding the vectors (float32 [passages, dim]) and a JSON `meta`: per file its size, mtime_ns,
sha256 and passages. A file whose size and mtime_ns match is reused unread (unless it was modified
just before it was last read); one whose bytes hash the same is reused too (a touch); any other
is re-chunked and re-embedded; a vanished file drops its passages. The file is replaced
atomically (temp file + rename).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MAX_WORDS = 200
# A file modified this close to when it was read may change again within the same mtime tick
# (git's "racy clean" problem; FAT's mtime ticks are 2 s): its size and mtime are not trusted.
RACY_NS = 2_000_000_000
SUFFIXES = (".txt", ".md", ".markdown")
# Bumped whenever chunking changes: an index built by other rules is rebuilt.
CHUNKER = "blocks-v1"
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


class TextEmbedder(Protocol):
    """What the index needs of a model (embed.Embedder is one)."""

    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Passage:
    """A piece of a file: where it starts and its text."""

    file: str
    line: int
    text: str


@dataclass
class Hit:
    """A passage and its cosine score against the question."""

    score: float
    passage: Passage


@dataclass
class Stats:
    """What one update did; `passages_embedded` is 0 when nothing changed."""

    files: int = 0
    passages: int = 0
    files_embedded: int = 0
    passages_embedded: int = 0
    files_reused: int = 0
    files_dropped: int = 0
    files_skipped: list[str] = field(default_factory=list)
    rebuilt: bool = False

    def line(self) -> str:
        """One human line."""
        return (f"index: {self.files} file(s), {self.passages} passage(s); embedded "
                f"{self.passages_embedded} passage(s) from {self.files_embedded} file(s), reused "
                f"{self.files_reused}, dropped {self.files_dropped}, skipped {len(self.files_skipped)}")


Block = list[tuple[int, str]]  # (1-based line number, line)


def _blocks(lines: list[str], markdown: bool) -> list[Block]:
    """The blank-line (and, in Markdown, heading) separated blocks of a file."""
    blocks: list[Block] = []
    current: Block = []
    fenced = False
    for number, text in enumerate(lines, start=1):
        if markdown and _FENCE.match(text):
            fenced = not fenced
        elif not fenced and not text.strip():
            if current:
                blocks.append(current)
            current = []
            continue
        elif not fenced and markdown and _HEADING.match(text) and current:
            blocks.append(current)
            current = []
        current.append((number, text))
    if current:
        blocks.append(current)
    return blocks


def _split(block: Block) -> list[tuple[int, str]]:
    """A block as passages of at most MAX_WORDS words, cut at a line end when one is past half."""
    words = [(number, word) for number, text in block for word in text.split()]
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(words):
        end = min(i + MAX_WORDS, len(words))
        if end < len(words):
            ends = [j for j in range(i + MAX_WORDS // 2, end + 1) if words[j][0] != words[j - 1][0]]
            end = ends[-1] if ends else end
        out.append((words[i][0], " ".join(w for _, w in words[i:end])))
        i = end
    return out


def chunk(file: str, text: str) -> list[Passage]:
    """The passages of one file's text (see the module docstring for the rules)."""
    markdown = not file.lower().endswith(".txt")
    merged: list[Block] = []
    for block in _blocks(text.splitlines(), markdown):
        if markdown and merged and len(merged[-1]) == 1 and _HEADING.match(merged[-1][0][1]):
            merged[-1] = merged[-1] + block
        else:
            merged.append(block)
    # Whitespace is collapsed: a passage is read (and embedded) as one paragraph.
    return [Passage(file, line, words) for block in merged for line, words in _split(block)]


def scan(folder: Path) -> list[Path]:
    """The text files under `folder`, hidden and generated folders (`node_modules`,
    `__pycache__`, `*.egg-info`, virtualenvs) skipped, sorted."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _generated(d))
        found += [Path(root, f) for f in sorted(files)
                  if not f.startswith(".") and f.lower().endswith(SUFFIXES)]
    return found


def decode(data: bytes) -> str | None:
    """The text of a file, or None when it is binary or not UTF-8."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def index_dir(home: Path, model_digest: str, folder: Path) -> Path:
    """Where the index of one model over one folder lives."""
    key = hashlib.sha256(f"{model_digest}\0{folder.resolve()}".encode()).hexdigest()
    return home / "indexes" / key[:32]


class DocIndex:
    """Passages and their unit vectors for one folder and one model."""

    def __init__(self, path: Path, model_digest: str, folder: Path) -> None:
        self.path = path
        self.model_digest = model_digest
        self.folder = folder.resolve()
        self.files: dict[str, dict[str, Any]] = {}
        self.vectors = np.zeros((0, 0), dtype=np.float32)

    @property
    def passages(self) -> list[Passage]:
        """Every passage, in the order of the vector rows."""
        return [Passage(name, p["line"], p["text"])
                for name in sorted(self.files) for p in self.files[name]["passages"]]

    def _load(self, dim: int) -> bool:
        """Read the saved index; False (and empty) when missing or built otherwise."""
        try:
            with np.load(self.path / "index.npz", allow_pickle=False) as saved:
                meta = json.loads(bytes(saved["meta"]).decode())
                vectors = np.asarray(saved["vectors"], dtype=np.float32)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return False  # missing or damaged: rebuilt from the files
        if (meta.get("model") != self.model_digest or meta.get("chunker") != CHUNKER
                or meta.get("dim") != dim or vectors.shape[1:] != (dim,)):
            return False
        files: dict[str, dict[str, Any]] = meta["files"]
        if sum(len(f["passages"]) for f in files.values()) != len(vectors):
            return False
        row = 0
        for name in sorted(files):
            n = len(files[name]["passages"])
            files[name]["vectors"] = vectors[row: row + n]
            row += n
        self.files, self.vectors = files, vectors
        return True

    def _save(self) -> None:
        """Write index.npz atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        files = {name: {k: v for k, v in entry.items() if k != "vectors"}
                 for name, entry in self.files.items()}
        meta = {"model": self.model_digest, "chunker": CHUNKER, "dim": int(self.vectors.shape[1]),
                "folder": str(self.folder), "files": files}
        buf = io.BytesIO()
        np.savez(buf, vectors=self.vectors,
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        tmp = self.path / f".index.{os.getpid()}.{id(self)}.tmp"
        with tmp.open("wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / "index.npz")

    def update(self, embedder: TextEmbedder, warn: Callable[[str], None] = lambda _: None) -> Stats:
        """Bring the index in line with the folder: embed new and changed files, drop gone ones."""
        stats = Stats(rebuilt=not self._load(embedder.dim))
        old: dict[str, dict[str, Any]] = self.files
        fresh: dict[str, dict[str, Any]] = {}
        touched = False
        todo: list[tuple[str, dict[str, Any]]] = []
        for path in scan(self.folder):
            name = path.relative_to(self.folder).as_posix()
            try:
                st = path.stat()
                entry = old.get(name)
                if (entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns
                        and entry["mtime_ns"] < entry.get("read_ns", 0) - RACY_NS):
                    fresh[name] = entry
                    continue
                read_ns = time.time_ns()
                data = path.read_bytes()
            except OSError as exc:
                warn(f"skipped {name}: {exc.strerror or exc}")
                stats.files_skipped.append(name)
                continue
            sha = hashlib.sha256(data).hexdigest()
            if entry and entry["sha256"] == sha:
                fresh[name] = {**entry, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                               "read_ns": read_ns}
                touched = True
                continue
            text = decode(data)
            if text is None:
                warn(f"skipped {name}: binary or not UTF-8")
                stats.files_skipped.append(name)
                continue
            passages = chunk(name, text)
            fresh[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha,
                           "read_ns": read_ns, "passages": [{"line": p.line, "text": p.text} for p in passages]}
            todo.append((name, fresh[name]))
        texts = [p["text"] for _, entry in todo for p in entry["passages"]]
        vectors = embedder.embed(texts)
        row = 0
        for _, entry in todo:
            n = len(entry["passages"])
            entry["vectors"] = vectors[row: row + n]
            row += n
        stats.files_reused = len(fresh) - len(todo)
        stats.files_embedded = len(todo)
        stats.passages_embedded = len(texts)
        stats.files_dropped = len(set(old) - set(fresh))
        self.files = fresh
        rows = [self.files[n]["vectors"] for n in sorted(self.files)]
        self.vectors = (np.concatenate(rows).astype(np.float32) if rows
                        else np.zeros((0, embedder.dim), dtype=np.float32))
        stats.files = len(self.files)
        stats.passages = len(self.vectors)
        if todo or touched or stats.files_dropped or stats.rebuilt:
            self._save()
        return stats

    def search(self, query_vector: np.ndarray, top: int) -> list[Hit]:
        """The `top` passages closest to a unit query vector, best first."""
        if not len(self.vectors):
            return []
        scores = self.vectors @ np.asarray(query_vector, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:top]
        passages = self.passages
        return [Hit(float(scores[i]), passages[int(i)]) for i in order]


def summary(hit: Hit) -> dict[str, Any]:
    """A hit as JSON-ready values."""
    return {"score": round(hit.score, 4), **asdict(hit.passage)}


_GENERATED = {"node_modules", "__pycache__", "site-packages", "venv"}


def _generated(name: str) -> bool:
    """Folders of installed or generated files, which hold no notes worth searching."""
    return name in _GENERATED or name.endswith(".egg-info")
