"""The demo catalog `make run` seeds: real classifiers with their params, metrics, lineage and
aliases, seeded once, completed after an interruption, never into someone else's catalog, and
runnable with the agent right away."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager

from modelyard.app import create_app
from modelyard.config import Settings
from tests.conftest import ADMIN_SECRET, GraphQLClient, free_port, running

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "scripts" / "demo" / "seed.py"
EXAMPLES = ROOT / "scripts" / "demo" / "examples"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    return {**env, **extra}


def seed(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python scripts/demo/seed.py --data-dir DATA`, as `make run` runs it."""
    return subprocess.run([sys.executable, str(SEED), "--data-dir", str(data), *args], env=env or _env(),
                          capture_output=True, text=True, timeout=300, check=False)


@functools.cache
def _train_module() -> ModuleType:
    """scripts/demo/train.py, the code that trained the demo's classifiers."""
    spec = importlib.util.spec_from_file_location("demo_train", ROOT / "scripts" / "demo" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A data dir seeded by a run killed half-way and a second run; a server on it; both runs' output.

    The first run is killed with its seed server (SIGKILL to its process group, as a closed
    terminal takes the whole job) right after it pushed its second model version, so every test
    below also checks that the next run completed that seed.
    """
    data = tmp_path_factory.mktemp("demo") / "data"
    proc = subprocess.Popen([sys.executable, str(SEED), "--data-dir", str(data)], env=_env(),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    assert proc.stderr is not None
    first = ""
    for line in proc.stderr:
        first += line
        if "pushed demo/iris-classifier:2" in line:
            os.killpg(proc.pid, signal.SIGKILL)  # the seed and the server it started: nothing left running
            break
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, first
    assert (data / ".demo-seeding").exists() and not (data / ".demo-seeded").exists()
    second = seed(data)
    assert second.returncode == 0, second.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(MODELYARD_ADMIN_TOKEN=ADMIN_SECRET)
    command = [sys.executable, "-m", "modelyard.cli", "serve", "--port", str(port), "--data-dir", str(data)]
    with running(command, env, f"{url}/healthz", data.parent / "server.log"):
        yield data, url, second.stderr


def gql(url: str, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers,
                      timeout=30).json()
    assert not body.get("errors"), body
    return dict(body["data"])


MODEL_PAGE = """
query($n: String!) {
  model(name: $n) {
    name task description tags { key value }
    aliases { name version { number } }
    versions(first: 20) {
      totalCount
      nodes {
        number status
        params { key type value }
        metrics { key value }
        artifacts { path }
        signature { inputs { name datatype shape } outputs { name datatype shape } }
        parents { relation parent { ... on ModelVersion { ref } ... on DatasetVersion { ref digest } } }
      }
    }
  }
}"""


def _page(url: str, name: str) -> dict[str, Any]:
    model = gql(url, MODEL_PAGE, n=name)["model"]
    assert model is not None, f"{name} was not seeded"
    model["by_number"] = {v["number"]: v for v in model["versions"]["nodes"]}
    return dict(model)


def _params(version: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {p["key"]: (p["type"], p["value"]) for p in version["params"]}


def _metrics(version: dict[str, Any]) -> dict[str, float]:
    return {m["key"]: m["value"] for m in version["metrics"]}


def _parents(version: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["relation"], p["parent"]["ref"]) for p in version["parents"]}


def test_the_iris_classifier_has_three_trained_versions_with_params_metrics_and_aliases(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    iris = _page(url, "demo/iris-classifier")
    assert iris["task"] == "TABULAR_CLASSIFICATION"
    assert "iris" in iris["description"].lower()
    assert iris["versions"]["totalCount"] == 3  # the killed run's versions were not pushed again
    assert {a["name"]: a["version"]["number"] for a in iris["aliases"]} == {"production": 2, "staging": 3}
    v1, v2, v3 = (iris["by_number"][n] for n in (1, 2, 3))
    assert _params(v1)["C"] == ("FLOAT", 0.05) and _params(v2)["C"] == ("FLOAT", 10.0)
    assert _params(v1)["algorithm"] == ("STRING", "LogisticRegression")
    assert _params(v3)["algorithm"] == ("STRING", "GradientBoostingClassifier")
    assert _params(v3)["n_estimators"] == ("INT", 60)
    for version in (v1, v2, v3):
        metrics = _metrics(version)
        assert 0.5 < metrics["accuracy"] <= 1.0 and 0.5 < metrics["f1_macro"] <= 1.0
        assert metrics["onnx_label_agreement"] == 1.0
        assert metrics["test_samples"] == 38
        assert version["status"] == "READY" and [a["path"] for a in version["artifacts"]] == ["model.onnx"]
        assert _parents(version) == {("TRAINED_ON", "demo/iris@train"), ("EVALUATED_ON", "demo/iris@test")}
        assert version["signature"]["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert [o["name"] for o in version["signature"]["outputs"]] == ["label", "probabilities"]
    # production is the better of the two logistic regressions
    assert _metrics(v2)["accuracy"] > _metrics(v1)["accuracy"]


def test_datasets_carry_the_digest_of_their_data(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    train = _train_module()
    split = train.load("iris")
    found = gql(url, "query($n: String!) { dataset(name: $n) { versions { version digest size uri } } }",
                n="demo/iris")["dataset"]
    versions = {v["version"]: v for v in found["versions"]}
    assert set(versions) == {"train", "test"}
    for which in ("train", "test"):
        digest, size = split.digest(which)
        assert (versions[which]["digest"], versions[which]["size"]) == (digest, size)


def test_lineage_links_fine_tuned_and_distilled_models(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    mlp = _page(url, "demo/digits-mlp")
    assert {a["name"]: a["version"]["number"] for a in mlp["aliases"]} == {"production": 2, "staging": 1}
    v1, v2 = mlp["by_number"][1], mlp["by_number"][2]
    assert ("FINE_TUNED_FROM", "demo/digits-mlp:1") in _parents(v2)
    assert _params(v1)["total_epochs"] == ("INT", 8) and _params(v2)["total_epochs"] == ("INT", 32)
    assert _params(v2)["hidden_layer_sizes"] == ("JSON", [32])
    assert _metrics(v2)["accuracy"] > _metrics(v1)["accuracy"]  # continued training helped
    history = gql(url, '{ version(ref: "demo/digits-mlp:2") { metricHistory(key: "train_loss") { step value } } }')
    losses = history["version"]["metricHistory"]
    assert [p["step"] for p in losses] == list(range(1, 33)) and losses[-1]["value"] < losses[0]["value"]
    student = _page(url, "demo/digits-student")["by_number"][1]
    assert ("DISTILLED_FROM", "demo/digits-mlp:2") in _parents(student)
    ancestors = gql(url, '{ lineage(ref: "demo/digits-student:1", direction: UP, depth: 5) '
                         '{ edges { relation parent { ... on ModelVersion { ref } } } } }')
    assert {"relation": "FINE_TUNED_FROM", "parent": {"ref": "demo/digits-mlp:1"}} in ancestors["lineage"]["edges"]
    wine = _page(url, "demo/wine-classifier")
    assert _params(wine["by_number"][1])["algorithm"] == ("STRING", "RandomForestClassifier")


HISTORY = """
query($n: String!) {
  model(name: $n) {
    production: aliasHistory(alias: "production") { at version { number } }
    staging: aliasHistory(alias: "staging") { at version { number } }
  }
}"""


def test_aliases_moved_as_a_release_moves_them_and_remember_where_they_pointed(
        seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    moves = {}
    for name in ("demo/iris-classifier", "demo/digits-mlp"):
        history = gql(url, HISTORY, n=name)["model"]
        moves[name] = {alias: [m["version"]["number"] for m in history[alias]] for alias in ("production", "staging")}
        first_production = history["production"][-1]["at"]  # newest first: the last is the first move
        then = gql(url, 'query($r: String!, $at: DateTime!) { version(ref: $r, at: $at) { number } }',
                   r=f"{name}@production", at=first_production)["version"]
        assert then == {"number": 1}, name  # what production named before it moved
    # Each move once, newest first, although the first seed was killed half-way through iris.
    assert moves == {"demo/iris-classifier": {"production": [2, 1], "staging": [3, 2]},
                     "demo/digits-mlp": {"production": [2, 1], "staging": [1]}}
    log = gql(url, '{ auditLog(first: 100, filter: {kinds: [ALIAS_SET]}) { nodes { objectRef changes } } }')
    iris = [e["changes"]["version"] for e in log["auditLog"]["nodes"]
            if e["objectRef"] == "demo/iris-classifier@production"]
    assert iris == [{"before": 1, "after": 2}, {"before": None, "after": 1}]


SERIES = """
query($r: String!) {
  version(ref: $r) {
    metric(key: "accuracy") { value }
    loss: metricHistory(key: "train_loss") { step value }
    train: metricHistory(key: "train_accuracy") { step value }
    test: metricHistory(key: "test_accuracy") { step value }
  }
}"""


def test_the_mlp_versions_carry_the_training_loops_per_epoch_metrics(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    train = _train_module()
    digits = train.load("digits")
    retrained = train.digits_mlp(digits, epochs=8)  # the same seed: what the demo's training measured
    v1 = gql(url, SERIES, r="demo/digits-mlp:1")["version"]
    v2 = gql(url, SERIES, r="demo/digits-mlp:2")["version"]
    for alias, key in (("loss", "train_loss"), ("train", "train_accuracy"), ("test", "test_accuracy")):
        assert [(p["step"], p["value"]) for p in v1[alias]] == retrained.series[key], key
        assert [p["step"] for p in v2[alias]] == list(range(1, 33)), key
        assert v2[alias][:8] == v1[alias], key  # version 2 continued version 1's training
    for version in (v1, v2):
        assert version["test"][-1]["value"] == version["metric"]["value"]  # the last epoch is the model measured
        assert all(0 < p["value"] <= 1 for p in version["train"] + version["test"])
    assert v2["loss"][-1]["value"] < v2["loss"][7]["value"] < v2["loss"][0]["value"]
    assert v2["train"][-1]["value"] > v2["train"][0]["value"]
    logged = gql(url, '{ auditLog(first: 100, filter: {model: "demo/digits-mlp", kinds: [METRICS_LOGGED]}) '
                      '{ nodes { objectRef } } }')
    assert sorted(e["objectRef"] for e in logged["auditLog"]["nodes"]) == ["demo/digits-mlp:1", "demo/digits-mlp:2"]


COMPARE = """
query($a: String!, $b: String!) {
  compare(a: $a, b: $b) {
    a { ref } b { ref }
    params { key change delta a { value } b { value } }
    metrics { key change delta a { value } b { value } }
    artifacts { path change sizeDelta }
    parents { relation side parent { ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
  }
}"""


def test_production_and_staging_compare_side_by_side(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    found = gql(url, COMPARE, a="demo/iris-classifier@production", b="demo/iris-classifier@staging")["compare"]
    assert (found["a"]["ref"], found["b"]["ref"]) == ("demo/iris-classifier:2", "demo/iris-classifier:3")
    params = {p["key"]: p for p in found["params"]}
    assert params["algorithm"]["change"] == "CHANGED"
    assert (params["algorithm"]["a"]["value"], params["algorithm"]["b"]["value"]) == (
        "LogisticRegression", "GradientBoostingClassifier")
    assert params["C"]["change"] == "REMOVED" and params["n_estimators"]["change"] == "ADDED"
    assert params["random_state"]["change"] == "SAME"
    metrics = {m["key"]: m for m in found["metrics"]}
    accuracy = metrics["accuracy"]
    assert accuracy["delta"] == accuracy["b"]["value"] - accuracy["a"]["value"]
    assert metrics["test_samples"]["change"] == "SAME"
    assert [(f["path"], f["change"]) for f in found["artifacts"]] == [("model.onnx", "CHANGED")]
    assert {(p["relation"], p["parent"]["ref"], p["side"]) for p in found["parents"]} == {
        ("TRAINED_ON", "demo/iris@train", "BOTH"), ("EVALUATED_ON", "demo/iris@test", "BOTH")}

    tuned = gql(url, COMPARE, a="demo/digits-mlp:1", b="demo/digits-mlp:2")["compare"]
    params = {p["key"]: p for p in tuned["params"]}
    assert (params["total_epochs"]["change"], params["total_epochs"]["delta"]) == ("CHANGED", 24)
    assert ("FINE_TUNED_FROM", "demo/digits-mlp:1", "B_ONLY") in {
        (p["relation"], p["parent"]["ref"], p["side"]) for p in tuned["parents"]}
    assert {m["key"] for m in tuned["metrics"]} >= {"accuracy", "train_loss", "train_accuracy", "test_accuracy"}


def test_a_mistyped_name_finds_the_model(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    found = gql(url, '{ suggestModels(name: "iris-clasifier") { name } }')["suggestModels"]
    assert found[0] == {"name": "demo/iris-classifier"}


def test_the_readme_quick_start_query_shows_params_metrics_and_lineage(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```graphql\n(.*?)```", readme, re.S) if '"demo/' in b]
    assert blocks, "the README's quick start has no query on the demo catalog"
    comparisons = [b for b in blocks if "compare(" in b]
    assert comparisons, "the README shows no comparison on the demo catalog"
    for block in comparisons:
        found = gql(url, block)["compare"]
        assert (found["a"]["ref"], found["b"]["ref"]) == ("demo/iris-classifier:2", "demo/iris-classifier:3")
        assert {p["change"] for p in found["params"]} >= {"CHANGED", "ADDED", "REMOVED"}
        assert all(m["delta"] is not None for m in found["metrics"])
        assert gql(url, block)["suggestModels"][0] == {"name": "demo/iris-classifier"}
    for block in (b for b in blocks if b not in comparisons):
        data = gql(url, block)
        page = data["model"]
        assert {a["name"] for a in page["aliases"]} == {"production", "staging"}
        nodes = {v["ref"]: v for v in page["versions"]["nodes"]}
        assert set(nodes) == {f"demo/iris-classifier:{n}" for n in (1, 2, 3)}
        v1 = nodes["demo/iris-classifier:1"]
        assert {"C", "max_iter"} <= {p["key"] for p in v1["params"]}
        assert "accuracy" in {m["key"] for m in v1["metrics"]}
        assert {"demo/iris@train", "demo/iris@test"} <= {e["parent"].get("ref") for e in v1["parents"]}
        assert {e["parent"]["ref"] for e in data["lineage"]["edges"]} >= {
            "demo/digits-mlp:2", "demo/digits-mlp:1", "demo/digits@train"}


def test_seeding_leaves_no_working_token_and_records_what_it_seeded(seeded: tuple[Path, str, str]) -> None:
    data, url, output = seeded
    tokens = gql(url, "{ tokens { name scope namespace revokedAt } }", ADMIN_SECRET)["tokens"]
    seeders = [t for t in tokens if t["name"].startswith("demo-seed-")]
    assert len(seeders) == 2  # the killed run's and the second run's
    assert all(t["revokedAt"] and t["scope"] == "WRITE" and t["namespace"] == "demo" for t in seeders)
    marker = json.loads((data / ".demo-seeded").read_text())
    assert "demo/iris-classifier:3" in marker["parts"]["catalog"]["refs"]
    assert not (data / ".demo-seeding").exists()
    assert "pushed demo/iris-classifier:3" in output and "pushed demo/iris-classifier:1" not in output


def test_a_second_run_changes_nothing(seeded: tuple[Path, str, str]) -> None:
    data, url, _ = seeded
    last = '{ auditLog(first: 1) { totalCount nodes { id } } }'
    before = gql(url, last, ADMIN_SECRET)
    marker = (data / ".demo-seeded").read_text()
    again = seed(data)
    assert again.returncode == 0
    assert "already seeded" in again.stderr
    assert gql(url, last, ADMIN_SECRET) == before  # not even a token was created
    assert (data / ".demo-seeded").read_text() == marker


def test_the_agent_pulls_and_runs_the_production_classifier(
        seeded: tuple[Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard_agent.cli import main

    _, url, _ = seeded
    monkeypatch.setenv("MODELYARD_AGENT_HOME", str(tmp_path / "agent"))
    monkeypatch.setenv("MODELYARD_SERVER", url)
    monkeypatch.delenv("MODELYARD_TOKEN", raising=False)

    def agent(*argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
        assert code == 0, err.getvalue()
        return out.getvalue()

    agent("pull", "demo/iris-classifier@production")
    response = json.loads(agent("run", "demo/iris-classifier@production", "--input", str(EXAMPLES / "iris.json")))
    outputs = {o["name"]: o for o in response["outputs"]}
    samples = np.array(json.loads((EXAMPLES / "iris.json").read_text())["inputs"][0]["data"],
                       dtype=np.float32).reshape(-1, 4)
    train = _train_module()
    model = train.iris_logreg(train.load("iris"), 10.0).estimator  # what production (v2) was trained as
    assert outputs["label"]["data"] == model.predict(samples).tolist() == [0, 1, 2]
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(probabilities, model.predict_proba(samples), atol=1e-5)


@pytest.mark.parametrize("layout", ["data-dir", "database-url"])
async def test_a_catalog_that_is_not_the_demos_is_left_alone(layout: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    db_url = f"sqlite://{tmp_path / 'elsewhere.db'}" if layout == "database-url" else ""
    settings = Settings(data_dir=data, database_url=db_url, admin_token=ADMIN_SECRET)

    async def catalog(mutation: str | None = None) -> dict[str, Any]:
        app = create_app(settings)
        async with LifespanManager(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                client = GraphQLClient(http)
                if mutation:
                    await client.ok(mutation)
                return await client.ok("{ models(first: 50) { nodes { name } } tokens { name } "
                                       'dataset(name: "demo/iris") { name } auditLog(first: 1) { totalCount } }')

    before = await catalog('mutation { createModel(input: {name: "my-model"}) { name } }')
    env = _env(MODELYARD_DATABASE_URL=db_url) if db_url else _env()
    result = await anyio.to_thread.run_sync(lambda: seed(data, env=env))
    assert result.returncode == 0, result.stderr
    assert "left alone" in result.stderr
    assert await catalog() == before
    assert [m["name"] for m in before["models"]["nodes"]] == ["my-model"]
    assert not (data / ".demo-seeded").exists() and not (data / ".demo-seeding").exists()


def test_the_tiny_chat_model_is_published_with_every_file_of_its_folder(seeded: tuple[Path, str, str]) -> None:
    _, url, _ = seeded
    folder = ROOT / "scripts" / "models" / "tiny-chat"
    if not any(folder.glob("*.onnx")):
        pytest.skip("scripts/models/tiny-chat holds no model in this checkout")
    chat = _page(url, "demo/tiny-chat")
    assert chat["task"] == "TEXT_GENERATION"
    assert {a["name"] for a in chat["aliases"]} == {"production"}
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    assert sorted(a["path"] for a in chat["by_number"][1]["artifacts"]) == files
    assert _params(chat["by_number"][1])["model.decoder.num_hidden_layers"] == ("INT", 2)
