"""Agent benchmark: pull, local inference over OIP HTTP, and chat, each against its bare baseline.

Everything runs on loopback in one fresh temp dir; the registry is the real `modelyard serve` and
the local server the real `modelyard-agent serve`, each in its own process.

    pull        `modelyard-agent pull` (parallel ranged GETs, sha256 while streaming, fsync, rename)
                of a version of N files, into an empty cache; baseline: plain streamed GETs of the
                same blobs to files, one after another, no hashing, no fsync (what curl does)
    infer       p50/p95 of `POST /v2/models/<m>/infer` (JSON, and binary tensors) on a kept-alive
                connection, against `session.run` on the same inputs in this process, for a tiny
                linear model and for all-MiniLM-L6-v2 (exported by scripts/export_minilm.py)
    chat        like for like on SmolLM2-135M-Instruct int4 (or --chat-model tiny): the agent's
                Generator in-process and the OpenAI-style streaming endpoint against a bare
                onnxruntime-genai loop (`append_tokens` + `generate_next_token`) in this process,
                all three on the same chat-templated prompt and the same number of generated
                tokens (the agent's greedy reply, up to `--tokens`); tokens/s and time to first token

    python scripts/bench/agent.py --quick        # 64 MiB pull, fewer repetitions
    python scripts/bench/agent.py [--pull-size 1GiB] [--files 4] [--requests 500] [--tokens 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
from machine import command_line, free_port, git_state, machine, process

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "desktop" / "tests"))

MiB = 1024**2
ADMIN = "myd_" + "b" * 43
TINY_CHAT = ROOT / "scripts" / "models" / "tiny-chat"
MINILM_CACHE = Path.home() / ".cache" / "modelyard-tests"
SENTENCE = "The registry keeps every model version with its lineage, params and metrics."


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))]


def timed(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


class Registry:
    """Publishes versions to the registry with plain HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=600)

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = self.http.post(f"{self.url}/graphql", json={"query": query, "variables": variables}).json()
        if body.get("errors"):
            raise SystemExit(f"registry: {body['errors']}")
        return dict(body["data"])

    def publish(self, model: str, folder: Path, task: str) -> str:
        self.gql("mutation($i: CreateModelInput!) { createModel(input: $i) { name } }",
                 i={"name": model, "task": task})
        arts = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(MiB):
                    h.update(chunk)
            dig = f"sha256:{h.hexdigest()}"
            with path.open("rb") as f:
                r = self.http.put(f"{self.url}/api/blobs/{dig}", content=iter(lambda: f.read(MiB), b""))
            r.raise_for_status()
            arts.append({"path": path.relative_to(folder).as_posix(), "digest": dig})
        out = self.gql("mutation($i: CreateVersionInput!) { createVersion(input: $i) { ref } }",
                       i={"model": model, "artifacts": arts})
        return str(out["createVersion"]["ref"])


def agent(home: Path, server: str, *argv: str) -> str:
    env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": server}
    done = subprocess.run([sys.executable, "-m", "modelyard_agent", *argv], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"modelyard-agent {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def bench_pull(tmp: Path, reg: Registry, size: int, files: int) -> list[str]:
    folder = tmp / "pull-src"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(files):
        with (folder / f"part-{i}.bin").open("wb") as f:
            for _ in range(size // files // MiB):
                f.write(rng.bytes(MiB))
    ref = reg.publish("bench-pull", folder, "OTHER")
    blobs = reg.gql("query($r: String!) { version(ref: $r) { artifacts { digest size } } }",
                    r=ref)["version"]["artifacts"]
    plain_dir = tmp / "plain"
    plain_dir.mkdir()

    def plain() -> None:
        with httpx.Client(timeout=600) as http:
            for b in blobs:
                with http.stream("GET", f"{reg.url}/api/blobs/{b['digest']}") as r, \
                        (plain_dir / b["digest"][7:]).open("wb") as f:
                    for chunk in r.iter_raw(MiB):
                        f.write(chunk)

    runs: dict[str, list[float]] = {"plain": [], "agent": []}
    for i in range(3):
        t = time.perf_counter()
        plain()
        runs["plain"].append(time.perf_counter() - t)
        home = tmp / f"agent-home-{i}"
        t = time.perf_counter()
        agent(home, reg.url, "pull", ref)
        runs["agent"].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in runs.items()}
    total = sum(int(b["size"]) for b in blobs)
    rate = {k: total / MiB / v for k, v in best.items()}
    return [
        f"| pull {total // MiB} MiB in {files} files | {best['agent']:.2f} s ({rate['agent']:.0f} MiB/s) "
        f"| plain streamed GETs {best['plain']:.2f} s ({rate['plain']:.0f} MiB/s) "
        f"| {best['agent'] / best['plain']:.2f}× the time |",
        "  (agent time includes starting its process, sha256 of every byte, fsync and rename; best of 3)",
    ]


def oip_infer(url: str, model: str, inputs: dict[str, np.ndarray], binary: bool,
              wanted: list[str] | None) -> Callable[[], Any]:
    import tritonclient.http as triton  # the client the issue names; it keeps its connection open

    client = triton.InferenceServerClient(url.removeprefix("http://"), connection_timeout=30,
                                          network_timeout=30)
    dtypes = {np.dtype("float32"): "FP32", np.dtype("int64"): "INT64"}
    tensors = []
    for name, array in inputs.items():
        t = triton.InferInput(name, list(array.shape), dtypes[array.dtype])
        t.set_data_from_numpy(array, binary_data=binary)
        tensors.append(t)
    outs = None if wanted is None else [triton.InferRequestedOutput(o, binary_data=binary) for o in wanted]

    def call() -> Any:
        return client.infer(model, tensors, outputs=outs)

    return call


def bench_infer(tmp: Path, reg: Registry, minilm: Path | None, n: int) -> list[str]:
    from models import linear_model

    tiny = tmp / "tiny"
    linear_model(tiny / "model.onnx")
    reg.publish("bench-tiny", tiny, "OTHER")
    home = tmp / "serve-home"
    agent(home, reg.url, "pull", "bench-tiny")
    models: list[tuple[str, Path, dict[str, np.ndarray], list[str] | None]] = [
        ("bench-tiny", tiny / "model.onnx", {"x": np.ones((1, 4), np.float32)}, None)]
    if minilm is not None:
        from tokenizers import Tokenizer

        reg.publish("bench-minilm", minilm, "FEATURE_EXTRACTION")
        agent(home, reg.url, "pull", "bench-minilm")
        enc = Tokenizer.from_file(str(minilm / "tokenizer.json")).encode(SENTENCE)
        feed = {"input_ids": np.array([enc.ids], np.int64),
                "attention_mask": np.array([enc.attention_mask], np.int64),
                "token_type_ids": np.array([enc.type_ids], np.int64)}
        models.append(("bench-minilm", minilm / "model.onnx", feed, ["sentence_embedding"]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows = []
    env = {"MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": reg.url}
    with process([sys.executable, "-m", "modelyard_agent", "serve", "--port", str(port)], env,
                 f"{url}/v2/health/ready", "modelyard-agent serve"):
        for name, path, feed, wanted in models:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            raw = percentiles(timed(lambda s=session, f=feed, w=wanted: s.run(w, f), n))
            for binary in (False, True):
                http = percentiles(timed(oip_infer(url, name, feed, binary, wanted), n))
                label = f"{name.removeprefix('bench-')} OIP {'binary' if binary else 'JSON'}"
                rows.append(f"| {label} | {http[0]:.3f} / {http[1]:.3f} ms | session.run "
                            f"{raw[0]:.3f} / {raw[1]:.3f} ms | +{http[0] - raw[0]:.3f} ms "
                            f"({http[0] / raw[0]:.1f}×) |")
    return rows


def bare_genai(folder: Path, prompt_ids: list[int], tokens: int) -> tuple[float, float, list[int]]:
    """A bare onnxruntime-genai greedy loop: (tokens/s over the whole reply, ms to the first
    token, the ids made), generating exactly `tokens` tokens after `prompt_ids`."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(prompt_ids) + tokens,
                              min_length=len(prompt_ids) + tokens)
    gen = og.Generator(model, params)
    made: list[int] = []
    t = time.perf_counter()
    gen.append_tokens(prompt_ids)
    first = 0.0
    while not gen.is_done() and len(made) < tokens:
        gen.generate_next_token()
        made.append(int(gen.get_next_tokens()[0]))
        if len(made) == 1:
            first = (time.perf_counter() - t) * 1000
    return len(made) / (time.perf_counter() - t), first, made


def chat_folder(name: str) -> Path:
    """The chat model to measure: SmolLM2 int4 (scripts/build_smollm2.py, shared with the tests'
    cache) or the tiny test model."""
    if name == "tiny":
        return TINY_CHAT
    script = ROOT / "scripts" / "build_smollm2.py"
    out = MINILM_CACHE / f"smollm2-{hashlib.sha256(script.read_bytes()).hexdigest()[:16]}"
    if not (out / "report.json").is_file():
        print(f"building SmolLM2-135M-Instruct int4 into {out} (once) …", flush=True)
        subprocess.run([sys.executable, str(script), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out / "int4"


def bench_chat(tmp: Path, reg: Registry, tokens: int, which: str) -> list[str]:
    """Like for like: the agent's reply is generated first (greedy, up to `tokens`); the bare
    loop then gets the same chat-templated prompt ids and makes exactly as many tokens, and the
    HTTP stream is asked for the same. Rates are best of 3 (the first runs warm up)."""
    from modelyard_agent.generate import Sampling, load_generator

    folder = chat_folder(which)
    messages = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper and a storm."}]
    gen = load_generator(folder, backend="onnxruntime-genai")
    _, prompt_ids = gen.prompt(messages)
    agent_rate, agent_first, count, text = 0.0, 0.0, 0, ""
    for _ in range(3):
        t = time.perf_counter()
        completion = gen.complete(messages, Sampling(temperature=0.0, max_tokens=tokens))
        first = None
        for _ in completion:
            if first is None:
                first = (time.perf_counter() - t) * 1000
        rate = completion.completion_tokens / (time.perf_counter() - t)
        if rate > agent_rate:
            agent_rate, agent_first = rate, first or 0.0
        count, text = completion.completion_tokens, completion.text
    runs = [bare_genai(folder, prompt_ids, count) for _ in range(3)]
    bare_rate, bare_first, made = max(runs)
    same = gen.tokens.decode(made) == text
    rows = [f"| chat ({which}), agent Generator in-process | {agent_rate:.1f} tokens/s, first token "
            f"{agent_first:.0f} ms | bare onnxruntime-genai loop {bare_rate:.1f} tokens/s, first token "
            f"{bare_first:.0f} ms | {agent_rate / bare_rate:.3f}× |"]
    home = tmp / "chat-home"
    reg.publish("bench-chat", folder, "TEXT_GENERATION")
    agent(home, reg.url, "pull", "bench-chat")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": reg.url}
    with process([sys.executable, "-m", "modelyard_agent", "serve", "--port", str(port)], env,
                 f"{url}/v2/health/ready", "modelyard-agent serve"), httpx.Client(timeout=300) as http:
        best, best_first, streamed = 0.0, 0.0, 0
        for _ in range(4):
            body = {"model": "bench-chat", "messages": messages, "stream": True, "temperature": 0,
                    "max_tokens": count, "stream_options": {"include_usage": True}}
            t = time.perf_counter()
            first = None
            with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                for line in r.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    chunk = json.loads(line[6:])
                    if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        first = (time.perf_counter() - t) * 1000
                    if chunk.get("usage"):
                        streamed = chunk["usage"]["completion_tokens"]
            rate = streamed / (time.perf_counter() - t)
            if rate > best:
                best, best_first = rate, first or 0.0
    rows.append(f"| chat ({which}), /v1/chat/completions streamed | {best:.1f} tokens/s, first token "
                f"{best_first:.0f} ms | bare onnxruntime-genai loop {bare_rate:.1f} tokens/s | {best / bare_rate:.3f}× |")
    rows.append(f"  (prompt {len(prompt_ids)} tokens; every side generated {count} tokens greedily "
                f"(streamed: {streamed}); the bare loop's text {'equals' if same else 'differs from'} the agent's)")
    return rows


def minilm_folder(skip: bool) -> Path | None:
    """The exported MiniLM, shared with the tests' cache (keyed by the export script's hash)."""
    if skip:
        return None
    script = ROOT / "scripts" / "export_minilm.py"
    out = MINILM_CACHE / f"minilm-{hashlib.sha256(script.read_bytes()).hexdigest()[:16]}"
    if not (out / "report.json").is_file():
        print(f"exporting all-MiniLM-L6-v2 to {out} (once) …", flush=True)
        tmp = out.with_name(out.name + ".tmp")
        subprocess.run([sys.executable, str(script), "--out", str(tmp)], check=True,
                       stdout=subprocess.DEVNULL)
        tmp.rename(out)
    return out / "fp32"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="64 MiB pull, 200 requests, 64 tokens")
    p.add_argument("--pull-size", type=int, help="bytes to pull (default 1 GiB; quick 64 MiB)")
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--requests", type=int, help="infer requests per case (default 500; quick 200)")
    p.add_argument("--tokens", type=int, help="tokens per chat reply (default 200; quick 64)")
    p.add_argument("--no-minilm", action="store_true", help="skip MiniLM (needs torch to export)")
    p.add_argument("--chat-model", choices=["smollm2", "tiny"], default="smollm2",
                   help="SmolLM2-135M-Instruct int4 (default; built once) or the tiny test model")
    p.add_argument("--only", choices=["pull", "infer", "chat"], action="append",
                   help="run only these cases (repeatable; default: all)")
    args = p.parse_args(argv)
    size = args.pull_size or (64 * MiB if args.quick else 1024 * MiB)
    n = args.requests or (200 if args.quick else 500)
    tokens = args.tokens or (64 if args.quick else 200)
    print(f"$ {command_line()}\ncommit {git_state()}; {machine()}; onnxruntime {ort.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    minilm = minilm_folder(args.no_minilm)
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"MODELYARD_ADMIN_TOKEN": ADMIN}
        with process([sys.executable, "-m", "modelyard.cli", "serve", "--port", str(port),
                      "--data-dir", str(tmp / "registry")], env, f"{url}/healthz", "modelyard serve"):
            reg = Registry(url)
            print("| case | modelyard-agent | baseline in the same run | ratio |\n|---|---|---|---|")
            only = set(args.only or ["pull", "infer", "chat"])
            if "pull" in only:
                for row in bench_pull(tmp, reg, size, args.files):
                    print(row, flush=True)
            if "infer" in only:
                for row in bench_infer(tmp, reg, minilm, n):
                    print(row, flush=True)
            if "chat" in only:
                for row in bench_chat(tmp, reg, tokens, args.chat_model):
                    print(row, flush=True)
    print("\ninfer: p50 / p95 over", n, "requests (tritonclient, one kept-alive connection)")


if __name__ == "__main__":
    main()
