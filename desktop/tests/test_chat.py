"""Chat with the committed tiny-chat model: both backends, the KV cache across turns, sampling,
limits, and `modelyard-agent chat` against a real server (one shot, REPL, Ctrl+C, refusals)."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import Agent, Publisher
from modelyard_agent.errors import UsageError
from modelyard_agent.generate import ContextLengthError, Generator, Sampling, load_generator

TINY = Path(__file__).resolve().parents[2] / "scripts" / "models" / "tiny-chat"
BACKENDS = ["onnxruntime", "onnxruntime-genai"]
GREEDY = Sampling(temperature=0)
HELLO = "Hello! I am a tiny model served by modelyard."
MODELYARD = "modelyard is a model registry that knows where every model came from."


@functools.cache
def generator(backend: str) -> Generator:
    return load_generator(TINY, backend=backend)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_the_folder_picks_onnxruntime_genai_and_both_backends_load_on_cpu() -> None:
    assert load_generator(TINY).backend == "onnxruntime-genai"
    for backend in BACKENDS:
        assert generator(backend).backend == backend
        assert generator(backend).provider == "CPUExecutionProvider"


def test_a_plain_onnx_folder_without_genai_config_or_template_uses_our_loop_and_chatml(
        tmp_path: Path) -> None:
    keep = {"model.onnx", "model.onnx.data", "tokenizer.json", "config.json"}
    for path in TINY.iterdir():
        if path.name in keep:
            shutil.copyfile(path, tmp_path / path.name)
    gen = load_generator(tmp_path)
    assert gen.backend == "onnxruntime"
    assert gen.context == 4096
    assert "".join(gen.complete(user("hello"), GREEDY)) == HELLO
    with pytest.raises(UsageError, match="no genai_config.json"):
        load_generator(tmp_path, backend="onnxruntime-genai")


@pytest.mark.parametrize("prompt", ["hello", "what is modelyard?", "café", "sing"])
def test_both_backends_choose_the_same_tokens_greedily(prompt: str) -> None:
    replies = []
    for backend in BACKENDS:
        completion = generator(backend).complete(user(prompt), Sampling(temperature=0, max_tokens=120))
        deltas = list(completion)
        replies.append((deltas, completion.completion_tokens, completion.finish_reason,
                        completion.prompt_tokens))
    assert replies[0] == replies[1]
    assert "\ufffd" not in "".join(replies[0][0])  # no UTF-8 character split across deltas


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_trained_answer_streams_and_stops_at_end_of_turn(backend: str) -> None:
    completion = generator(backend).complete(user("hello"), GREEDY)
    deltas = list(completion)
    assert "".join(deltas) == HELLO
    assert len(deltas) > 1
    assert completion.finish_reason == "stop"
    assert completion.completion_tokens == len(deltas)
    assert completion.prompt_tokens > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_conversation_feeds_only_new_tokens_and_answers_as_the_whole_history_would(
        backend: str) -> None:
    gen = generator(backend)
    conversation = gen.conversation()
    first = conversation.say("hello", GREEDY)
    assert "".join(first) == HELLO
    assert conversation.last_fed == first.prompt_tokens
    second = conversation.say("what is modelyard?", GREEDY)
    assert "".join(second) == MODELYARD
    new_turn = gen.tokens.encode("<|im_end|>\n<|im_start|>user\nwhat is modelyard?<|im_end|>\n"
                                 "<|im_start|>assistant\n")
    assert conversation.last_fed <= len(new_turn)
    assert second.prompt_tokens > first.prompt_tokens + first.completion_tokens
    assert [m["role"] for m in conversation.messages] == ["user", "assistant"] * 2
    stateless = gen.complete(conversation.messages[:-1], GREEDY)
    assert "".join(stateless) == MODELYARD
    assert stateless.prompt_tokens == second.prompt_tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_clear_forgets_the_history_and_the_cache(backend: str) -> None:
    conversation = generator(backend).conversation()
    "".join(conversation.say("hello", GREEDY))
    "".join(conversation.say("thanks", GREEDY))
    conversation.clear()
    assert conversation.messages == []
    again = conversation.say("hello", GREEDY)
    assert "".join(again) == HELLO
    assert conversation.last_fed == again.prompt_tokens == generator(backend).complete(
        user("hello"), GREEDY).prompt_tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_tokens_ends_the_reply_with_length(backend: str) -> None:
    completion = generator(backend).complete(user("sing"), Sampling(temperature=0, max_tokens=5))
    assert "".join(completion).startswith("la la")
    assert completion.completion_tokens == 5
    assert completion.finish_reason == "length"


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_from_another_thread_stops_the_reply_and_the_partial_reply_is_kept(backend: str) -> None:
    gen = generator(backend)
    conversation = gen.conversation()
    completion = conversation.say("sing", Sampling(temperature=0, max_tokens=3000))
    first = next(completion)
    canceller = threading.Thread(target=completion.cancel)
    canceller.start()
    canceller.join()
    rest = list(completion)
    assert rest == []
    assert completion.finish_reason == "stop"
    assert completion.completion_tokens < 5
    assert conversation.messages[-1] == {"role": "assistant", "content": first}
    after = conversation.say("bye", GREEDY)
    reply = "".join(after)
    assert reply == "".join(gen.complete(conversation.messages[:-1], GREEDY))
    assert conversation.last_fed < after.prompt_tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reply_cancelled_before_it_starts_leaves_the_conversation_usable(backend: str) -> None:
    gen = generator(backend)
    conversation = gen.conversation()
    "".join(conversation.say("hello", GREEDY))
    unstarted = conversation.say("sing", GREEDY)
    unstarted.cancel()
    assert list(unstarted) == []
    assert (unstarted.finish_reason, unstarted.completion_tokens) == ("stop", 0)
    reply = "".join(conversation.say("what is modelyard?", GREEDY))
    assert reply == "".join(gen.complete(conversation.messages[:-1], GREEDY))


@pytest.mark.parametrize("backend", BACKENDS)
def test_completions_consumed_from_several_threads_at_once_are_each_right(backend: str) -> None:
    gen = generator(backend)
    prompts = ["hello", "what is modelyard?", "thanks", "who are you?"] * 2
    expected = {p: "".join(gen.complete(user(p), GREEDY)) for p in set(prompts)}
    got: dict[int, str] = {}

    def consume(i: int) -> None:
        got[i] = "".join(gen.complete(user(prompts[i]), GREEDY))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(prompts))] == [expected[p] for p in prompts]


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeded_sampling_repeats_and_top_k_1_is_greedy(backend: str) -> None:
    gen = generator(backend)
    hot = Sampling(temperature=3.0, top_k=0, top_p=1.0, max_tokens=12, seed=2)
    runs = ["".join(gen.complete(user("hello"), hot)) for _ in range(2)]
    assert runs[0] == runs[1]
    others = {"".join(gen.complete(user("hello"), Sampling(temperature=3.0, top_k=0, top_p=1.0,
                                                           max_tokens=12, seed=s))) for s in (3, 4, 5)}
    assert len(others | {runs[0]}) > 1
    for seed in (-5, 2**40):  # any integer an API client may send
        wide = Sampling(temperature=3.0, top_k=0, top_p=1.0, max_tokens=12, seed=seed)
        assert len({"".join(gen.complete(user("hello"), wide)) for _ in range(2)}) == 1
    top1 = gen.complete(user("tell me a story"), Sampling(temperature=2.0, top_k=1, seed=9))
    assert "".join(top1) == "".join(gen.complete(user("tell me a story"), GREEDY))


def test_bad_sampling_and_too_long_prompts_are_refused() -> None:
    gen = generator("onnxruntime")
    for bad in (Sampling(temperature=-1), Sampling(top_p=0), Sampling(top_p=1.5), Sampling(top_k=-1),
                Sampling(max_tokens=0)):
        with pytest.raises(UsageError):
            gen.complete(user("hello"), bad)
    with pytest.raises(ContextLengthError, match="context holds 4096"):
        gen.complete(user("la " * 5000), GREEDY)


def test_a_conversation_that_outgrows_the_context_drops_its_oldest_turns() -> None:
    gen = generator("onnxruntime")
    conversation = gen.conversation(system="You are a helpful assistant.")
    short = Sampling(temperature=0, max_tokens=4)
    for _ in range(3):
        "".join(conversation.say("la " * 1500, short))
    assert conversation.truncations == 1
    assert len(conversation.messages) == 4
    last = conversation.say("hello", short)
    "".join(last)
    assert last.prompt_tokens + 4 <= gen.context


# --- `modelyard-agent chat` against a real server -----------------------------------------------

_published: dict[str, str] = {}


def tiny_chat(publisher: Publisher, task: str = "TEXT_GENERATION") -> str:
    """The name of a model on the server whose one version is the tiny-chat folder."""
    if task not in _published:
        name = f"chat-{task.lower().replace('_', '-')}-{os.getpid()}"
        publisher.gql("mutation($n: String!, $t: Task!) { createModel(input: {name: $n, task: $t}) "
                      "{ name } }", n=name, t=task)
        publisher.version(name, {p.name: p.read_bytes() for p in sorted(TINY.iterdir())})
        _published[task] = name
    return _published[task]


def spawn_chat(agent: Agent, *argv: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(agent.home), "MODELYARD_SERVER": agent.server,
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "modelyard_agent", "chat", *argv], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_chat_prompt_answers_once_from_a_pulled_version(agent: Agent, publisher: Publisher) -> None:
    name = tiny_chat(publisher)
    assert agent("pull", name).code == 0
    for backend in BACKENDS:
        done = agent("chat", name, "--prompt", "hello", "--temperature", "0", "--backend", backend)
        assert (done.code, done.err) == (0, "")
        assert done.out == HELLO + "\n"


def test_chat_refuses_unpulled_refs_other_tasks_and_bad_flags(agent: Agent, publisher: Publisher) -> None:
    done = agent("chat", "never-pulled", "--prompt", "hello")
    assert done.code == 2
    assert "not in the cache; pull it first" in done.err
    other = tiny_chat(publisher, "FEATURE_EXTRACTION")
    assert agent("pull", other).code == 0
    done = agent("chat", other, "--prompt", "hello")
    assert done.code == 2
    assert "feature-extraction model, not text-generation" in done.err
    assert "`run`" in done.err
    name = tiny_chat(publisher)
    assert agent("pull", name).code == 0
    done = agent("chat", name, "--prompt", "hello", "--top-p", "0")
    assert done.code == 2
    assert "top_p must be in (0, 1]" in done.err


def test_chat_repl_keeps_going_after_bad_settings_and_clears(agent: Agent, publisher: Publisher) -> None:
    name = tiny_chat(publisher)
    assert agent("pull", name).code == 0
    proc = spawn_chat(agent, name)
    script = ("/set temperature -1\n/set top_k x\n/set temperature 0\n/help\nhello\n/clear\n"
              "what is \\\nmodelyard?\n\"\"\"\nthanks\n\"\"\"\n")
    out, err = proc.communicate(script.encode(), timeout=60)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "onnxruntime-genai on CPUExecutionProvider" in text
    assert "temperature must be >= 0" in err.decode()
    assert "top_k needs a int" in err.decode()
    assert f">>> {HELLO}\n" in text
    assert "cleared the conversation" in text
    # The continued line and the block are one message each, answered once.
    assert f">>> ... {MODELYARD}\n" in text
    assert ">>> ... ... You are welcome!\n" in text
    assert text.count(">>> ") == 9  # eight inputs, then EOF


def read_until(proc: subprocess.Popen[bytes], marker: bytes, seen: bytes = b"") -> bytes:
    """Everything the process printed up to and including `marker`."""
    assert proc.stdout is not None
    while marker not in seen:
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"the REPL ended before printing {marker!r}: {seen.decode()!r}"
        seen += chunk
    return seen


def test_ctrl_c_stops_a_reply_and_the_repl_goes_on_until_ctrl_c_at_the_prompt(
        agent: Agent, publisher: Publisher) -> None:
    name = tiny_chat(publisher)
    assert agent("pull", name).code == 0
    proc = spawn_chat(agent, name, "--temperature", "0", "--max-tokens", "4000",
                      "--backend", "onnxruntime")
    assert proc.stdin is not None
    proc.stdin.write(b"sing\n")
    proc.stdin.flush()
    seen = read_until(proc, b"la la la")
    proc.send_signal(signal.SIGINT)
    proc.stdin.write(b"/clear\nhello\n")
    proc.stdin.flush()
    seen = read_until(proc, f"{HELLO}\n>>> ".encode(), seen)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    text = (seen + out).decode()
    assert proc.returncode == 0, err.decode()
    assert " [stopped]\n" in text
    assert text.count("la ") < 3000
    assert f">>> {HELLO}\n" in text
