"""The demo catalog: datasets, classifiers, their versions, lineage, metric series and aliases.

    demo/iris@train ──TRAINED_ON── demo/iris-classifier:1 (LogisticRegression C=0.05)
    demo/iris@test ──EVALUATED_ON─┘                    :2 (LogisticRegression C=10)   @production
                                                       :3 (GradientBoosting)          @staging
    demo/wine@train/test ─────────── demo/wine-classifier:1 (RandomForest)            @production
    demo/digits@train/test ───────── demo/digits-mlp:1 (MLP, 8 epochs)                @staging
                                     demo/digits-mlp:2 FINE_TUNED_FROM :1 (+24 epochs) @production
                                     demo/digits-student:1 DISTILLED_FROM digits-mlp:2 @production

Aliases move as a release would move them, each move right after its version is pushed (so
`aliasHistory` and `version(ref, at)` have a story to tell): iris @production :1 -> :2 and
@staging :2 -> :3; digits-mlp @staging :1 and @production :1 -> :2. The MLP versions carry the
training loop's per-epoch `train_loss`, `train_accuracy` and `test_accuracy` (steps = epochs),
logged with `logMetrics`; `demo/digits-mlp:2` continues :1's series from epoch 9.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import train
from publish import ModelPlan, Publisher, VersionFacts, VersionPlan, say

SPLITS = ("iris", "wine", "digits")


def model_card(title: str, split: train.Split, body: str) -> str:
    """A Markdown description: what the model is, what it takes and how to run it."""
    n = split.x_train.shape[1]
    features = ", ".join(split.feature_names[:6]) + (" …" if n > 6 else "")
    classes = ", ".join(f"{i} = {t}" for i, t in enumerate(split.target_names))
    return (
        f"# {title}\n\n{body}\n\n"
        f"Trained on `demo/{split.name}@train` ({len(split.y_train)} rows of scikit-learn's bundled "
        f"`{split.loader}()`, a stratified {int((1 - train.TEST_SIZE) * 100)}/{int(train.TEST_SIZE * 100)} "
        f"split, seed {train.SEED}), measured on `demo/{split.name}@test` ({len(split.y_test)} rows).\n\n"
        f"- input `{train.INPUT}`: FP32 `[batch, {n}]` — {features}\n"
        f"- output `label`: INT64 `[batch]` — {classes}\n"
        "- output `probabilities`: FP32 `[batch, classes]`\n\n"
        "Exported with skl2onnx (ZipMap off). Run it on this machine:\n\n"
        "```sh\nmodelyard-agent pull <this model>@production\n"
        "modelyard-agent run <this model>@production --input input.json\n```\n"
    )


def tags(trained: train.Trained) -> dict[str, str]:
    import sklearn

    return {"framework": "scikit-learn", "sklearn": sklearn.__version__, "python": platform.python_version(),
            "algorithm": str(trained.params["algorithm"])}


def version(split: train.Split, fit: Callable[[], train.Trained], description: str,
            parents: tuple[tuple[str, str], ...] = (), series: tuple[str, ...] = ()) -> VersionPlan:
    """A version built by `fit()`, exported to ONNX, with TRAINED_ON / EVALUATED_ON edges and the
    per-epoch `series` its training measured."""

    def build(folder: Path) -> VersionFacts:
        trained = fit()
        train.export(trained, split, folder)
        return VersionFacts(
            params=train.public_params(trained), metrics=trained.metrics, tags=tags(trained),
            parents=(*parents, (f"demo/{split.name}@train", "trained_on"), (f"demo/{split.name}@test", "evaluated_on")),
            description=description, series=trained.series,
        )

    return VersionPlan(build, series)


def plans(splits: dict[str, train.Split]) -> list[ModelPlan]:
    """Every demo model, in the order they are published (parents before children)."""
    iris, wine, digits = splits["iris"], splits["wine"], splits["digits"]
    mlp: dict[int, train.Trained] = {}

    def mlp_v1() -> train.Trained:
        mlp[1] = train.digits_mlp(digits, epochs=8)
        return mlp[1]

    def mlp_v2() -> train.Trained:
        if 1 not in mlp:
            mlp_v1()  # resuming after v1 was published: retrain it (same seed, same weights)
        mlp[2] = train.digits_mlp(digits, epochs=24, start=mlp[1])
        return mlp[2]

    def student() -> train.Trained:
        if 2 not in mlp:
            mlp_v2()
        return train.distilled_logreg(digits, mlp[2])

    common = {"demo": "true", "owner": "modelyard-demo"}
    return [
        ModelPlan(
            "demo/iris-classifier", "TABULAR_CLASSIFICATION",
            model_card("Iris species classifier", iris, "Tells the three iris species apart from four "
                       "flower measurements (cm). Three candidates: two regularisation strengths of a "
                       "logistic regression and gradient-boosted trees."),
            {**common, "dataset": "iris"},
            [
                version(iris, lambda: train.iris_logreg(iris, 0.05), "Strongly regularised baseline (C=0.05)."),
                version(iris, lambda: train.iris_logreg(iris, 10.0), "Weaker regularisation (C=10)."),
                version(iris, lambda: train.gradient_boosting(iris), "Gradient-boosted trees, for comparison."),
            ],
            [("production", 1), ("staging", 2), ("production", 2), ("staging", 3)],
        ),
        ModelPlan(
            "demo/wine-classifier", "TABULAR_CLASSIFICATION",
            model_card("Wine cultivar classifier", wine, "Tells three cultivars apart from 13 chemical "
                       "measurements of the wine."),
            {**common, "dataset": "wine"},
            [version(wine, lambda: train.random_forest(wine), "Random forest of 40 shallow trees.")],
            [("production", 1)],
        ),
        ModelPlan(
            "demo/digits-mlp", "IMAGE_CLASSIFICATION",
            model_card("Handwritten digit classifier", digits, "Reads 8×8 grey images of digits "
                       "(pixel values 0–16, row by row) with a one-hidden-layer perceptron. Version 2 "
                       "continues training version 1. `train_loss` (the epoch's mean training loss), "
                       "`train_accuracy` and `test_accuracy` have one point per epoch."),
            {**common, "dataset": "digits"},
            [
                version(digits, mlp_v1, "8 epochs of Adam from a random start.", series=train.SERIES),
                version(digits, mlp_v2, "Version 1 trained 24 more epochs (warm start).",
                        (("demo/digits-mlp:1", "fine_tuned_from"),), series=train.SERIES),
            ],
            [("staging", 1), ("production", 1), ("production", 2)],
        ),
        ModelPlan(
            "demo/digits-student", "IMAGE_CLASSIFICATION",
            model_card("Distilled digit classifier", digits, "A logistic regression fitted to the labels "
                       "`demo/digits-mlp:2` predicts, rather than to the true ones: a smaller, linear "
                       "student. `teacher_agreement` is how often it agrees with the teacher on the test split."),
            {**common, "dataset": "digits"},
            [version(digits, student, "Distilled from demo/digits-mlp:2.",
                     (("demo/digits-mlp:2", "distilled_from"),))],
            [("production", 1)],
        ),
    ]


def prepare() -> dict[str, train.Split]:
    """The datasets, split (loaded once per process)."""
    return {name: train.load(name) for name in SPLITS}


def seed(publisher: Publisher) -> list[str]:
    """Publish the datasets and classifiers that are missing; the refs the catalog now holds."""
    splits = prepare()
    refs: list[str] = []
    for split in splits.values():
        for which in ("train", "test"):
            digest, size = split.digest(which)
            x, _ = split.part(which)
            refs.append(publisher.dataset(
                f"demo/{split.name}", which, uri=f"sklearn.datasets.{split.loader}#{which}",
                digest=digest, size=size,
                description=f"{len(x)} rows × {x.shape[1]} features of `{split.loader}()`, the {which} side of a "
                            f"stratified split (test_size={train.TEST_SIZE}, random_state={train.SEED}). "
                            "Digest: sha256 of X as float64 then y as int64, C order."))
    for plan in plans(splits):
        refs.extend(publisher.model(plan))
        say(f"  {plan.name}: {plan.story()}")
    return refs
