"""The demo's models: scikit-learn classifiers trained on sklearn's bundled datasets, as ONNX.

Everything here is deterministic (fixed seeds) and runs in seconds on one CPU: the seed trains
each model, converts it with skl2onnx and measures it on a held-out split, and the test retrains
the same models to compare their predictions with what the agent runs.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
TEST_SIZE = 0.25
OPSETS = {"": 17, "ai.onnx.ml": 3}
"""ONNX opsets every onnxruntime since 1.14 runs (the agent may be older than this machine's)."""
INPUT = "input"


@dataclass(frozen=True)
class Split:
    """One of sklearn's bundled datasets, split into train and test, stratified."""

    name: str
    loader: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    target_names: list[str]

    def part(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """`train` or `test` as (X, y)."""
        return (self.x_train, self.y_train) if which == "train" else (self.x_test, self.y_test)

    def digest(self, which: str) -> tuple[str, int]:
        """sha256 and size of the split's canonical bytes: X as float64, then y as int64."""
        x, y = self.part(which)
        data = np.ascontiguousarray(x, dtype=np.float64).tobytes() + np.ascontiguousarray(y, dtype=np.int64).tobytes()
        return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


@functools.cache
def load(name: str) -> Split:
    """`iris`, `wine` or `digits`, from the files bundled with scikit-learn (no network)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loader = f"load_{name}"
    bunch = getattr(datasets, loader)()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    features = [str(f) for f in getattr(bunch, "feature_names", [f"x{i}" for i in range(x.shape[1])])]
    return Split(name, loader, x_train, x_test, y_train, y_test, features, [str(t) for t in bunch.target_names])


@dataclass
class Trained:
    """A fitted estimator, what it was fitted with, how it scored on the test split, and what the
    training loop measured along the way (`series`: key -> [(step, value)], one step per epoch)."""

    estimator: Any
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def evaluate(trained: Trained, split: Split, onnx_bytes: bytes) -> None:
    """Accuracy and macro F1 on the test split, and how closely the ONNX export agrees."""
    import onnxruntime as ort
    from sklearn.metrics import accuracy_score, f1_score

    x, y = split.x_test, split.y_test
    predicted = trained.estimator.predict(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {INPUT: x})
    trained.metrics.update({
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
        "test_samples": int(len(y)),
        "onnx_label_agreement": float(np.mean(label == predicted)),
        "onnx_max_proba_diff": float(np.max(np.abs(proba - trained.estimator.predict_proba(x)))),
    })


def to_onnx(estimator: Any, n_features: int, classifier: Any | None = None) -> bytes:
    """The fitted estimator as ONNX: `input` FLOAT [batch, n] -> `label` INT64, `probabilities` FLOAT.

    ZipMap is off so that probabilities are a plain tensor any OIP client can read.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    head = classifier if classifier is not None else estimator
    model = convert_sklearn(
        estimator, initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options={id(head): {"zipmap": False}}, target_opset=OPSETS)
    out: bytes = model.SerializeToString()
    return out


def iris_logreg(split: Split, c: float) -> Trained:
    """Logistic regression on standardised features, inverse regularisation strength `c`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(C=c, max_iter=1000, random_state=SEED)
    pipe = make_pipeline(StandardScaler(), clf).fit(split.x_train, split.y_train)
    return Trained(pipe, {"algorithm": "LogisticRegression", "C": float(c), "max_iter": 1000,
                          "solver": clf.solver, "penalty": "l2", "standardize": True,
                          "n_iter": int(clf.n_iter_[0]), "random_state": SEED})


def gradient_boosting(split: Split) -> Trained:
    """Gradient-boosted trees."""
    from sklearn.ensemble import GradientBoostingClassifier

    params = {"n_estimators": 60, "learning_rate": 0.1, "max_depth": 2, "subsample": 1.0}
    clf = GradientBoostingClassifier(random_state=SEED, **params).fit(split.x_train, split.y_train)
    return Trained(clf, {"algorithm": "GradientBoostingClassifier", **params, "random_state": SEED})


def random_forest(split: Split) -> Trained:
    """A random forest of shallow trees."""
    from sklearn.ensemble import RandomForestClassifier

    params = {"n_estimators": 40, "max_depth": 4, "min_samples_leaf": 2}
    clf = RandomForestClassifier(random_state=SEED, **params).fit(split.x_train, split.y_train)
    return Trained(clf, {"algorithm": "RandomForestClassifier", **params, "random_state": SEED})


MLP_HIDDEN = [32]
MLP_LR = 1e-3
MLP_BATCH = 64


SERIES = ("train_loss", "train_accuracy", "test_accuracy")
"""What `digits_mlp` measures after every epoch: the epoch's mean training loss (the value
`MLPClassifier` appends to `loss_curve_`), and accuracy on the train and test splits."""


def digits_mlp(split: Split, epochs: int, start: Trained | None = None) -> Trained:
    """A small MLP trained with `epochs` passes of mini-batch Adam; continues `start` if given
    (a copy of it: `start` is left as it was, and its series are continued, not restarted)."""
    import copy

    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if start is None:
        scaler = StandardScaler().fit(split.x_train)
        mlp = MLPClassifier(hidden_layer_sizes=tuple(MLP_HIDDEN), learning_rate_init=MLP_LR,
                            batch_size=MLP_BATCH, alpha=1e-4, random_state=SEED)
        series: dict[str, list[tuple[int, float]]] = {key: [] for key in SERIES}
    else:
        scaler = copy.deepcopy(start.estimator.named_steps["scale"])
        mlp = copy.deepcopy(start.estimator.named_steps["mlp"])
        series = {key: list(points) for key, points in start.series.items()}
    x, x_test = scaler.transform(split.x_train), scaler.transform(split.x_test)
    classes = np.unique(split.y_train)
    done = len(series["train_loss"])
    rng = np.random.default_rng(SEED + done)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partial_fit never converges "early": that is the point
        for epoch in range(done + 1, done + epochs + 1):
            order = rng.permutation(len(x))
            mlp.partial_fit(x[order], split.y_train[order], classes=classes)
            series["train_loss"].append((epoch, float(mlp.loss_curve_[-1])))
            series["train_accuracy"].append((epoch, float(mlp.score(x, split.y_train))))
            series["test_accuracy"].append((epoch, float(mlp.score(x_test, split.y_test))))
    pipe = Pipeline([("scale", scaler), ("mlp", mlp)])
    params = {"algorithm": "MLPClassifier", "hidden_layer_sizes": MLP_HIDDEN,
              "optimizer": "adam", "learning_rate_init": MLP_LR, "batch_size": MLP_BATCH, "alpha": 1e-4,
              "epochs": epochs, "total_epochs": done + epochs, "random_state": SEED}
    return Trained(pipe, params, series=series)


def distilled_logreg(split: Split, teacher: Trained) -> Trained:
    """A logistic regression fitted to the teacher's predicted labels (knowledge distillation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    soft = teacher.estimator.predict(split.x_train)
    clf = LogisticRegression(C=0.5, max_iter=2000, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), clf).fit(split.x_train, soft)
    trained = Trained(pipe, {"algorithm": "LogisticRegression", "C": 0.5, "max_iter": 2000,
                             "targets": "teacher labels", "random_state": SEED})
    agree = float(np.mean(pipe.predict(split.x_test) == teacher.estimator.predict(split.x_test)))
    trained.metrics["teacher_agreement"] = agree
    return trained


def export(trained: Trained, split: Split, folder: Path) -> Path:
    """Convert, evaluate and write `folder/model.onnx`; returns the file."""
    head = None
    steps = getattr(trained.estimator, "steps", None)
    if steps:
        head = steps[-1][1]
    data = to_onnx(trained.estimator, split.x_train.shape[1], head)
    evaluate(trained, split, data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(data)
    return path


def public_params(trained: Trained) -> dict[str, Any]:
    """The params to record (without private bookkeeping such as the loss history)."""
    return {k: v for k, v in trained.params.items() if not k.startswith("_")}


Builder = Callable[[dict[str, Split], dict[str, Trained]], Trained]
