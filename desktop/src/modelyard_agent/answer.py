"""Grounded answers: passages retrieved from indexed files, an answer from them, with citations.

One flow for `modelyard-agent ask` and `POST /v1/ask`:

1. `retrieve`: the question's nearest passages (docindex); those scoring under `min_score`
   (cosine) are not about the question. None left: the answer says so, and no model is run —
   a small model asked without sources invents.
2. `build_prompt`: a short system message, then one user message holding the numbered sources,
   the question and how to answer (a small model follows what is in the user's turn far better
   than a long system message; asked to answer in the sources' words it copies instead of
   inventing — compared on this repo's docs with four other layouts for SmolLM2-135M), within the model's context: sources are cut to
   `SOURCE_WORDS` words and the lowest-ranked dropped until the prompt and the reply fit.
3. `events`: the answer streamed as deltas, then which sources it cites. `[n]` markers the model
   wrote are kept when n names a source it was given. A small model often cites nothing: then the
   sources are attributed by content — each sentence of the answer to the source sharing most
   of its content words (at least `ATTRIBUTE_MIN` of them) — and `attributed` says so. A reply
   that starts repeating itself (the same `LOOP_CHARS` characters a third time) is stopped,
   finish_reason "repetition": small models loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from modelyard_agent.docindex import DocIndex, Hit
from modelyard_agent.embed import Embedder
from modelyard_agent.errors import UsageError
from modelyard_agent.generate import Completion, Generator, Sampling

MIN_SCORE = 0.3
"""all-MiniLM-L6-v2 cosine under which a passage is rarely about the question (measured on this
repo's docs: answers sat at 0.45–0.75, unrelated questions under 0.25)."""
SOURCE_WORDS = 120
ATTRIBUTE_MIN = 3
LOOP_CHARS = 32
NOTHING = "I found nothing in your files about that, so I will not guess."
SYSTEM = "You copy facts from the sources exactly. You never add facts."
ASK = "Answer in one sentence, using words from the sources, and cite the source number like [1]."
SAMPLING = Sampling(temperature=0.2, top_p=0.9, top_k=40, max_tokens=160)
"""SmolLM2's recommended sampling; greedy decoding makes small models loop sooner."""
_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-./]*[a-z0-9]|[a-z0-9]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOPWORDS = frozenset(
    "a an and are as at be been but by can do does for from has have how i if in into is it its "
    "not of on or so than that the their them then there these they this to was were what when "
    "where which who why will with you your".split()
)


@dataclass(frozen=True)
class Source:
    """A passage given to the model, numbered from 1 in the order it was given."""

    n: int
    file: str
    line: int
    score: float
    text: str


@dataclass
class Grounding:
    """What an answer is built from: the sources kept and the messages for the model."""

    question: str
    sources: list[Source]
    messages: list[dict[str, str]] = field(default_factory=list)


def retrieve(index: DocIndex, embedder: Embedder, question: str, top: int,
             min_score: float = MIN_SCORE) -> list[Source]:
    """The `top` passages nearest the question that score at least `min_score`, numbered."""
    if not question.strip():
        raise UsageError("the question is empty")
    if top < 1:
        raise UsageError("top must be 1 or more")
    hits: list[Hit] = index.search(embedder.embed([question])[0], top)
    kept = [h for h in hits if h.score >= min_score]
    return [Source(n, h.passage.file, h.passage.line, round(float(h.score), 4), h.passage.text)
            for n, h in enumerate(kept, start=1)]


def _words(text: str, limit: int) -> str:
    parts = text.split()
    return text if len(parts) <= limit else " ".join(parts[:limit]) + " …"


def _messages(question: str, sources: list[Source]) -> list[dict[str, str]]:
    listed = "\n\n".join(f"[{s.n}] {_words(s.text, SOURCE_WORDS)}" for s in sources)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Sources:\n\n{listed}\n\nQuestion: {question.strip()}\n{ASK}"}]


def build_prompt(generator: Generator, question: str, sources: list[Source], max_tokens: int) -> Grounding:
    """The messages for `question` over `sources`, dropping the lowest-ranked sources until the
    prompt leaves `max_tokens` of the model's context for the reply."""
    kept = list(sources)
    while True:
        messages = _messages(question, kept)
        ids = generator.tokens.encode(generator.tokens.render(messages, generation_prompt=True))
        if len(ids) + max_tokens <= generator.context or not kept:
            break
        kept.pop()
    if len(ids) + max_tokens > generator.context:
        raise UsageError(f"the question alone is {len(ids)} tokens; with {max_tokens} for the answer "
                         f"it does not fit the model's context of {generator.context}")
    return Grounding(question, kept, messages)


def cited(answer: str, sources: list[Source]) -> list[int]:
    """Source numbers the answer cites as `[n]` or `[n, m]`, first mention first, valid ones only."""
    numbers = {s.n for s in sources}
    found: list[int] = []
    for match in _CITE.finditer(answer):
        for part in match.group(1).split(","):
            n = int(part)
            if n in numbers and n not in found:
                found.append(n)
    return found


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


def attribute(answer: str, sources: list[Source]) -> list[int]:
    """Sources an answer that cites nothing draws on: per sentence, the source sharing the most
    content words with it, when it shares at least ATTRIBUTE_MIN; first use first."""
    found: list[int] = []
    words = {s.n: _content(s.text) for s in sources}
    for sentence in _SENTENCE.split(answer):
        mine = _content(sentence)
        best = max(sources, key=lambda s: (len(mine & words[s.n]), -s.n), default=None)
        if best is not None and len(mine & words[best.n]) >= ATTRIBUTE_MIN and best.n not in found:
            found.append(best.n)
    return found


def looping(text: str) -> bool:
    """Whether the text's last LOOP_CHARS characters occur in it three times (a reply in a loop)."""
    tail = text[-LOOP_CHARS:]
    return len(text) >= 3 * LOOP_CHARS and len(tail.strip()) > LOOP_CHARS // 2 and text.count(tail) >= 3


def events(generator: Generator | None, grounding: Grounding, sampling: Sampling,
           started: list[Completion] | None = None) -> Iterator[dict[str, Any]]:
    """The answer as events: `sources`, `delta`s, then `done` (cited, attributed, grounded,
    finish_reason, usage). With no sources the answer is NOTHING and no model runs. The
    completion is appended to `started` (so a caller can cancel it from another thread)."""
    yield {"type": "sources", "sources": [asdict(s) for s in grounding.sources]}
    if not grounding.sources or generator is None:
        yield {"type": "delta", "content": NOTHING}
        yield {"type": "done", "cited": [], "attributed": False, "grounded": False, "finish_reason": "stop",
               "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
        return
    completion = generator.complete(grounding.messages, sampling)
    if started is not None:
        started.append(completion)
    finish = None
    try:
        for delta in completion:
            yield {"type": "delta", "content": delta}
            if looping(completion.text):
                finish = "repetition"
                break
    finally:
        completion.cancel()
    numbers = cited(completion.text, grounding.sources)
    attributed = not numbers
    if attributed:
        numbers = attribute(completion.text, grounding.sources)
    prompt, done = completion.prompt_tokens, completion.completion_tokens
    yield {"type": "done", "cited": numbers, "attributed": attributed, "grounded": True,
           "finish_reason": finish or completion.finish_reason or "stop",
           "usage": {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}}
