"""Text generation from a pulled folder: chat template, tokenizer, KV-cached decoding, sampling.

Two backends behind one `Generator`:

  onnxruntime-genai  when the folder has genai_config.json: og.Model / og.Generator do the
                     decoding and sampling; prompts are still tokenized by our tokenizer.
  onnxruntime        our own loop on one InferenceSession: past_key_values.N.* in, present.N.*
                     out, a growing past; temperature / top_k / top_p over a seeded numpy RNG,
                     greedy at temperature 0 (or top_k 1).

Prompts are the tokenizer_config.json chat_template rendered with jinja2 (ChatML when there is
none). Limits: a prompt that does not fit the context (leaving one token to generate) is refused
with ContextLengthError; a reply ends with finish_reason "length" at max_tokens or at the end
of the context. A `Conversation` keeps its cache across turns and feeds only the new tokens;
when a turn would not fit it drops the oldest turns (keeping a system message), clears the cache
and feeds the shortened history again.

Thread safety: a Generator serves completions consumed from many threads at once (each has its
own cache; onnxruntime-genai steps are serialised by a lock); a Conversation is one user's and
not shared. A cancelled reply ends with finish_reason "stop".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard_agent.errors import AgentError, UsageError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
DEFAULT_CONTEXT = 2048
_GENAI_PROVIDERS = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                    "DmlExecutionProvider": "dml", "WebGpuExecutionProvider": "webgpu"}


class ContextLengthError(UsageError):
    """The prompt does not fit the model's context."""


class GenerationError(AgentError):
    """The runtime failed while generating."""


@dataclass
class Sampling:
    """How to pick each next token; temperature 0 is greedy, top_k 0 is off."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    max_tokens: int = 256
    seed: int | None = None

    def check(self) -> Sampling:
        """Itself, or UsageError naming the first value out of range."""
        if not self.temperature >= 0:
            raise UsageError(f"temperature must be >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0 (0 = off), not {self.top_k}")
        if self.max_tokens < 1:
            raise UsageError(f"max_tokens must be >= 1, not {self.max_tokens}")
        return self

    @property
    def greedy(self) -> bool:
        """Whether every step takes the most likely token."""
        return self.temperature == 0 or self.top_k == 1


def sample(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """One token id from a row of logits: greedy, else temperature then top_k then top_p."""
    if sampling.greedy:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / sampling.temperature
    ids = np.arange(z.shape[0])
    if 0 < sampling.top_k < z.shape[0]:
        ids = np.argpartition(-z, sampling.top_k - 1)[: sampling.top_k]
    ids = ids[np.argsort(-z[ids], kind="stable")]
    p = np.exp(z[ids] - z[ids[0]])
    p /= p.sum()
    if sampling.top_p < 1:
        keep = int(np.searchsorted(np.cumsum(p), sampling.top_p)) + 1
        ids, p = ids[:keep], p[:keep] / p[:keep].sum()
    return int(ids[rng.choice(len(ids), p=p)])


class Tokens:
    """tokenizer.json, the chat template and the special ids of a folder."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        path = folder / "tokenizer.json"
        if not path.is_file():
            raise UsageError(f"{folder.name} has no tokenizer.json; chat needs one")
        self.tokenizer = Tokenizer.from_file(str(path))
        cfg = _json(folder / "tokenizer_config.json")
        self.specials = {k: _token_text(cfg.get(k)) for k in ("bos_token", "eos_token", "pad_token")}
        template = cfg.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        jinja = folder / "chat_template.jinja"  # where transformers 5 saves it
        if not (isinstance(template, str) and template) and jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        self.template_text = template if isinstance(template, str) and template else CHATML
        self._template: Any = None

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        """The prompt text of a conversation."""
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise UsageError(f"chat template: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
            self._template = env.from_string(self.template_text)
        return str(self._template.render(messages=messages, add_generation_prompt=generation_prompt,
                                         **{k: v or "" for k, v in self.specials.items()}))

    def encode(self, text: str) -> list[int]:
        """Token ids of prompt text (its special tokens are in the text already)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        """Text of token ids, special tokens left out."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def id(self, text: str | None) -> int | None:
        """The id of one token's text, if the vocabulary has it."""
        return None if not text else self.tokenizer.token_to_id(text)


class _Detokenizer:
    """Turns ids into text deltas; holds back bytes until they complete a UTF-8 character."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.ids: list[int] = []
        self.prefix = self.read = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self.tokens.decode(self.ids[self.prefix:self.read])
        after = self.tokens.decode(self.ids[self.prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""

    def flush(self) -> str:
        """Whatever is held back (an incomplete character decodes as U+FFFD)."""
        before = self.tokens.decode(self.ids[self.prefix:self.read])
        after = self.tokens.decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return after[len(before):]


@dataclass
class _State:
    """What one sequence's cache holds: the ids fed, the sampled id not fed yet, their text."""

    fed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    text: str = ""
    cache: Any = None
    prompt_fed: int = 0  # ids the last prompt ran through the model
    key: Any = None  # the backend's tag for a cache it can only reuse with the same settings


class _Backend:
    """One loaded model: feeds ids into a state and yields sampled ids."""

    name = ""
    provider = ""
    context = DEFAULT_CONTEXT

    def steps(self, state: _State, new: list[int], sampling: Sampling,
              length: int | None = None) -> Iterator[int]:
        """Feed state.pending + new, then sample ids one at a time until the caller stops.

        `length` bounds the sequence (prompt and reply) when it is known; default the context.
        """
        raise NotImplementedError


class _OrtBackend(_Backend):
    """Our own decoding loop over a plain InferenceSession."""

    name = "onnxruntime"

    def __init__(self, folder: Path, providers: list[str] | None, context: int,
                 head_size: int | None) -> None:
        import onnxruntime as ort

        path = folder / "model.onnx"
        if not path.is_file():
            candidates = sorted(folder.glob("*.onnx"))
            if not candidates:
                raise UsageError(f"{folder.name} holds no .onnx model")
            path = candidates[0]
        try:
            self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise UsageError(f"cannot load {path.name}: {exc}") from exc
        self.provider = self.session.get_providers()[0]
        self.context = context
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.past = sorted((n for n in inputs if n.startswith("past_key_values.")), key=_layer_order)
        self.present = [n.replace("past_key_values.", "present.", 1) for n in self.past]
        outputs = {o.name for o in self.session.get_outputs()}
        if "input_ids" not in inputs or "logits" not in outputs or not self.past \
                or not set(self.present) <= outputs:
            raise UsageError(f"{path.name} is not a decoder with input_ids, past_key_values.* "
                             "and logits, present.*")
        self.with_positions = "position_ids" in inputs
        self.with_mask = "attention_mask" in inputs
        self.ints = {n: np.int32 if inputs[n].type == "tensor(int32)" else np.int64
                     for n in ("input_ids", "attention_mask", "position_ids") if n in inputs}
        self.dtypes = {n: _NUMPY.get(inputs[n].type, np.float32) for n in self.past}
        self.shapes = {n: inputs[n].shape for n in self.past}
        self.head_size = head_size

    def _empty(self) -> dict[str, np.ndarray]:
        out = {}
        for name in self.past:
            batch, heads, _, size = self.shapes[name]
            size = size if isinstance(size, int) else self.head_size
            if not isinstance(heads, int) or not isinstance(size, int):
                raise UsageError(f"{name} has no fixed head count and size: {self.shapes[name]}")
            out[name] = np.zeros((1, heads, 0, size), dtype=self.dtypes[name])
        return out

    def _feed(self, state: _State, ids: list[int]) -> np.ndarray:
        past = state.cache if state.cache is not None else self._empty()
        start = len(state.fed)
        feeds: dict[str, np.ndarray] = {"input_ids": np.array([ids], dtype=self.ints["input_ids"]), **past}
        if self.with_mask:
            feeds["attention_mask"] = np.ones((1, start + len(ids)), dtype=self.ints["attention_mask"])
        if self.with_positions:
            feeds["position_ids"] = np.arange(start, start + len(ids), dtype=self.ints["position_ids"])[None, :]
        outs = self.session.run(["logits", *self.present], feeds)
        state.prompt_fed = state.prompt_fed or len(ids)
        state.cache = dict(zip(self.past, outs[1:], strict=True))
        state.fed += ids
        return np.asarray(outs[0][0, -1])

    def steps(self, state: _State, new: list[int], sampling: Sampling,
              length: int | None = None) -> Iterator[int]:
        rng = np.random.default_rng(None if sampling.seed is None else sampling.seed % 2**64)
        ids = state.pending + new
        state.pending = []
        while True:
            logits = self._feed(state, ids)
            token = sample(logits, sampling, rng)
            state.pending = [token]
            yield token
            ids = [token]
            state.pending = []


class _GenaiBackend(_Backend):
    """onnxruntime-genai's generator; one per state, kept while its search options stay the same."""

    name = "onnxruntime-genai"

    def __init__(self, folder: Path, providers: list[str] | None, context: int) -> None:
        import onnxruntime_genai as og

        self.og = og
        try:
            config = og.Config(str(folder))
            self.provider = "CPUExecutionProvider"
            if providers:
                config.clear_providers()
                for p in providers:
                    if p not in _GENAI_PROVIDERS:
                        raise UsageError(f"onnxruntime-genai cannot use provider {p}")
                    if _GENAI_PROVIDERS[p] != "cpu":
                        config.append_provider(_GENAI_PROVIDERS[p])
                self.provider = providers[0]
            self.model = og.Model(config)
        except UsageError:
            raise
        except Exception as exc:  # onnxruntime-genai raises plain RuntimeError
            raise UsageError(f"onnxruntime-genai cannot load {folder.name}: {exc}") from exc
        self.context = context
        # One og.Generator step at a time: the model's sessions are shared by every generator.
        self.lock = threading.Lock()

    def _generator(self, state: _State, sampling: Sampling, length: int) -> Any:
        key = (sampling.greedy, sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed)
        if state.cache is not None and state.key == key:
            return state.cache
        params = self.og.GeneratorParams(self.model)
        options: dict[str, Any] = {"max_length": length, "do_sample": not sampling.greedy}
        if not sampling.greedy:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p,
                           top_k=sampling.top_k or 0)
            if sampling.seed is not None:
                options["random_seed"] = sampling.seed % 2**31  # genai takes an int32; -1 is random
        params.set_search_options(**options)
        with self.lock:
            generator = self.og.Generator(self.model, params)
        # A new generator starts empty: whatever the state held is fed again.
        state.pending = state.fed + state.pending
        state.fed = []
        state.cache, state.key = generator, key
        return generator

    def steps(self, state: _State, new: list[int], sampling: Sampling,
              length: int | None = None) -> Iterator[int]:
        # genai sizes its KV buffers for max_length up front: a one-off reply asks for no more.
        generator = self._generator(state, sampling, length or self.context)
        ids = state.pending + new
        state.pending = []
        with self.lock:
            generator.append_tokens(np.array(ids, dtype=np.int32))
        state.fed += ids
        state.prompt_fed = len(ids)
        while True:
            with self.lock:
                generator.generate_next_token()
                token = int(generator.get_next_tokens()[0])
            # genai feeds its last sampled token itself at the next step or append_tokens.
            state.fed.append(token)
            yield token


class Completion(Iterator[str]):
    """A reply being generated: iterate for text deltas; counts and finish_reason when done."""

    def __init__(self, tokens: Tokens, steps: Iterator[int], eos: set[int], sampling: Sampling,
                 room: int, prompt_tokens: int, on_done: Callable[[Completion], None] | None = None,
                 cancelled: threading.Event | None = None) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.text = ""
        self._tokens, self._steps, self._eos = tokens, steps, eos
        self._limit = min(sampling.max_tokens, room)
        self._detok = _Detokenizer(tokens)
        self._cancelled = cancelled or threading.Event()
        self._on_done = on_done
        self._lock = threading.Lock()
        self._tail = ""  # text held back at the end (an incomplete character), given last

    def cancel(self) -> None:
        """Stop before the next token (finish_reason "stop"); safe from any thread."""
        self._cancelled.set()

    def __iter__(self) -> Completion:
        return self

    def __next__(self) -> str:
        with self._lock:
            while self.finish_reason is None:
                if self._cancelled.is_set():
                    self._finish("stop")
                    break
                if self.completion_tokens >= self._limit:
                    self._finish("length")
                    break
                try:
                    token = next(self._steps)
                except AgentError:
                    raise
                except Exception as exc:  # onnxruntime's errors carry no useful type
                    raise GenerationError(f"generation failed: {exc}") from exc
                if token in self._eos:
                    self._finish("stop")
                    break
                self.completion_tokens += 1
                delta = self._detok.push(token)
                if delta:
                    self.text += delta
                    return delta
            if self._tail:
                tail, self._tail = self._tail, ""
                return tail
            raise StopIteration

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason
        self._tail = self._detok.flush()
        self.text += self._tail
        self._steps.close()  # type: ignore[attr-defined]
        if self._on_done is not None:
            self._on_done(self)


class Generator:
    """A loaded text-generation model; thread-safe, sessions loaded once."""

    def __init__(self, backend: _Backend, tokens: Tokens, eos: set[int]) -> None:
        self._backend, self.tokens, self.eos = backend, tokens, eos
        self.backend = backend.name
        self.provider = backend.provider
        self.context = backend.context

    def prompt(self, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
        """The rendered prompt of a conversation and its ids; ContextLengthError when too long."""
        _check_messages(messages)
        text = self.tokens.render(messages, generation_prompt=True)
        ids = self.tokens.encode(text)
        if len(ids) >= self.context:
            raise ContextLengthError(f"the prompt is {len(ids)} tokens; the context holds "
                                     f"{self.context}, with room for the reply")
        return text, ids

    def complete(self, messages: list[dict[str, str]], sampling: Sampling) -> Completion:
        """A reply to a whole conversation (no state is kept between calls)."""
        sampling.check()
        text, ids = self.prompt(messages)
        state = _State()
        cancelled = threading.Event()
        steps = self._backend.steps(state, ids, sampling,
                                    min(self.context, len(ids) + sampling.max_tokens))
        return Completion(self.tokens, steps, self.eos, sampling, self.context - len(ids), len(ids),
                          cancelled=cancelled)

    def conversation(self, system: str | None = None) -> Conversation:
        """A chat whose cache is kept across turns."""
        return Conversation(self, system)


class Conversation:
    """REPL state: the history and a cache holding it, so each turn feeds only its new tokens."""

    def __init__(self, generator: Generator, system: str | None = None) -> None:
        self.generator = generator
        self.system = system
        self.messages: list[dict[str, str]] = []
        self.tokens_fed = 0  # ids run through the model so far, all turns together
        self.last_fed = 0  # ids the last turn ran through the model
        self.truncations = 0  # times old turns were dropped to fit the context
        self._state = _State()
        self._current: Completion | None = None

    def clear(self) -> None:
        """Forget the history and the cache."""
        self._settle()
        self.messages = []
        self._state = _State()

    def history(self) -> list[dict[str, str]]:
        """The messages the model sees, a system message first if there is one."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages

    def say(self, text: str, sampling: Sampling) -> Completion:
        """Add a user turn and start the reply; the reply (even cut short) joins the history."""
        sampling.check()
        self._settle()
        self.messages.append({"role": "user", "content": text})
        gen = self.generator
        reserve = min(sampling.max_tokens, gen.context // 2)
        while True:
            prompt = gen.tokens.render(self.history(), generation_prompt=True)
            if prompt.startswith(self._state.text) and self._state.text:
                new = gen.tokens.encode(prompt[len(self._state.text):])
                total = len(self._state.fed) + len(self._state.pending) + len(new)
            else:
                new = gen.tokens.encode(prompt)
                total = len(new)
            if total + reserve <= gen.context:
                break
            if len(self.messages) <= 1:
                self.messages.pop()
                raise ContextLengthError(f"the message is {total} tokens; the context holds "
                                         f"{gen.context} with {reserve} for the reply")
            # Drop the oldest exchange and start the cache over from the shorter history.
            del self.messages[: 2 if len(self.messages) > 2 else 1]
            self._state = _State()
            self.truncations += 1
        if not (prompt.startswith(self._state.text) and self._state.text):
            self._state = _State()
        state = self._state
        state.prompt_fed = 0
        cached_text = state.text
        state.text = prompt
        cancelled = threading.Event()
        steps = gen._backend.steps(state, new, sampling)

        def on_done(completion: Completion) -> None:
            self.last_fed = state.prompt_fed
            self.tokens_fed += state.prompt_fed
            self.messages.append({"role": "assistant", "content": completion.text})
            # The cache holds the prompt and the reply (its last id maybe not fed yet), and the
            # end-of-turn id when the model chose to stop: the text the next turn must extend.
            ended = completion.finish_reason == "stop" and not cancelled.is_set()
            if state.prompt_fed == 0:  # cancelled before the prompt went in: the cache is as it was
                state.text = cached_text
            else:
                state.text = prompt + completion.text + (_eos_text(gen, state) if ended else "")
            self._current = None

        self._current = Completion(gen.tokens, steps, gen.eos, sampling, gen.context - total,
                                   total, on_done=on_done, cancelled=cancelled)
        return self._current

    def _settle(self) -> None:
        """Finish a reply still being generated, so its text is in the history."""
        if self._current is not None:
            self._current.cancel()
            for _ in self._current:
                pass


def _eos_text(gen: Generator, state: _State) -> str:
    """The text of the end-of-turn id the model produced (pending or fed last)."""
    ids = state.pending or state.fed
    last = ids[-1] if ids else None
    if last is None or last not in gen.eos:
        return ""
    return str(gen.tokens.tokenizer.id_to_token(last) or "")


def load_generator(folder: Path, *, backend: str | None = None,
                   providers: list[str] | None = None) -> Generator:
    """Load a folder's model for chat: onnxruntime-genai when it has genai_config.json."""
    genai = _json(folder / "genai_config.json")
    chosen = backend or ("onnxruntime-genai" if genai else "onnxruntime")
    if chosen not in ("onnxruntime", "onnxruntime-genai"):
        raise UsageError(f"unknown backend {chosen!r}: use onnxruntime or onnxruntime-genai")
    if chosen == "onnxruntime-genai" and not genai:
        raise UsageError(f"{folder.name} has no genai_config.json for onnxruntime-genai")
    tokens = Tokens(folder)
    context = _context(folder, genai)
    impl: _Backend
    if chosen == "onnxruntime-genai":
        impl = _GenaiBackend(folder, providers, context)
    else:
        impl = _OrtBackend(folder, providers, context, _head_size(folder, genai))
    return Generator(impl, tokens, _eos_ids(folder, genai, tokens))


def _context(folder: Path, genai: dict[str, Any]) -> int:
    """The longest sequence the model takes: genai_config, config.json, then tokenizer_config."""
    model = genai.get("model") or {}
    for value in (model.get("context_length"), _json(folder / "config.json").get("max_position_embeddings"),
                  _json(folder / "tokenizer_config.json").get("model_max_length")):
        if isinstance(value, int) and 0 < value < 10_000_000:
            return value
    return DEFAULT_CONTEXT


def _head_size(folder: Path, genai: dict[str, Any]) -> int | None:
    """The KV head size, for graphs that leave it symbolic."""
    size = ((genai.get("model") or {}).get("decoder") or {}).get("head_size")
    if isinstance(size, int):
        return size
    cfg = _json(folder / "config.json")
    if isinstance(cfg.get("head_dim"), int):
        return int(cfg["head_dim"])
    hidden, heads = cfg.get("hidden_size"), cfg.get("num_attention_heads")
    return hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None


def _eos_ids(folder: Path, genai: dict[str, Any], tokens: Tokens) -> set[int]:
    """Every id that ends a reply, from genai_config, generation_config and tokenizer_config."""
    ids: set[int] = set()
    for value in ((genai.get("model") or {}).get("eos_token_id"),
                  _json(folder / "generation_config.json").get("eos_token_id"),
                  _json(folder / "config.json").get("eos_token_id")):
        ids.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, int))
    for text in (tokens.specials.get("eos_token"),
                 "<|im_end|>" if "<|im_end|>" in tokens.template_text else None):
        token = tokens.id(text)
        if token is not None:
            ids.add(token)
    if not ids:
        raise UsageError(f"{folder.name} names no end-of-sequence token")
    return ids


def _check_messages(messages: list[dict[str, str]]) -> None:
    if not messages:
        raise UsageError("a chat needs at least one message")
    for m in messages:
        if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise UsageError("every message needs a string role and content")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path.name}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _layer_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0, name)


_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
