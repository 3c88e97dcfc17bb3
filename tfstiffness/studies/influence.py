"""TracIn influence study: which training examples helped or hurt each test example.

Trains a classifier with Adam at a constant learning rate (`training.train_resumable`, the
studies' resumable loop), saving the weights after every epoch as
``checkpoints/epoch_001.weights.h5``, ``epoch_002...``, or takes a user's checkpoints. Then
computes TracIn (Pruthi et al. 2020, TracInCP; `tfstiffness.influence`) over those
checkpoints, eta_t the learning rate of each, for every training example against a fixed
probe of test examples drawn by `seed`: the [N, M] scores, each probe example's top-k
proponents (highest scores) and opponents (lowest), and each training example's
self-influence `sum_t eta_t |g_t(z)|^2` with its ranking.

With `flip_labels` = f > 0, a share f of the training labels is flipped before training
(`label_noise.flip_labels`, deterministic by `seed`) and the study reports how well
self-influence finds them: the ROC AUC (`neighbourhood.roc_auc`), next to the AUC of the
final model's per-example training loss (the obvious baseline), and the share of flipped
labels among the highest-ranked 5, 10 and 20 % (Pruthi et al.'s figure 2).

With Adam, eta_t is Adam's step size, not the step it took: TracIn's derivation assumes SGD.
The rankings and AUCs do not depend on a common scale of the etas.

Outputs (see `runner`): ``config.json``, ``summary.json`` (every number), ``results.npz``
(scores, top-k, self-influence and its ranking, labels, per-epoch metrics),
``checkpoints/`` (when training), ``figures/proponents_opponents_<first>-<last>.png`` (probe
examples in pages of 10 rows), ``figures/highest_self_influence.png``,
``figures/flipped_label_detection.png`` (with flipped labels), and TensorBoard runs
``train`` and ``test`` (per epoch, live), ``influence`` (the AUCs and label agreements) and
``figures`` (every figure as an image). A restart with the same arguments resumes after the
last finished epoch; the TracIn scores, once computed, are a stage of their own.

Example:
    >>> import tempfile
    >>> s = run_influence(tempfile.mkdtemp(), dataset="gaussian_blobs", model="mlp",
    ...                   epochs=2, num_test=4, top_k=3, flip_labels=0.1,
    ...                   data_options={"num_per_class": 20}, verbose=False)
    >>> s["results"]["checkpoints"], 0 <= s["results"]["flipped_labels"]["self_influence_auc"] <= 1
    (2, True)
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness import checks, training
from tfstiffness.errors import StudyInputError
from tfstiffness.outputs import run_directory
from tfstiffness.outputs.atomic import TMP_SUFFIX
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import influence_results, model_factory, progress, runner
from tfstiffness.studies.config import parameter

__all__ = ["DATASETS", "KINDS", "MODELS", "InfluenceConfig", "run_influence"]

#: Models: "mlp" fully connected 100-100; "mnist1d_cnn" Greydanus' CNN for 1-D signals;
#: "fc" and "cnn" the stiffness paper's (500-300-100; three 3x3 convolutions on images;
#: on 1-D signals "cnn" is the MNIST-1D CNN, as in the other studies).
MODELS = ("mlp", "mnist1d_cnn", "fc", "cnn")
KINDS = ("dot", "cosine")
#: `data.load` sets the study draws (text sets are not drawn by the figures: not offered).
DATASETS = ("mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100", "hierarchical_images",
            "gaussian_blobs")
#: Largest test probe: the [N, M] scores are held in memory (50,000 x 1,000 is 400 MB).
MAX_NUM_TEST = 1000
#: `flip_labels` when None: flip when the study trains, never with given checkpoints.
DEFAULT_FLIP = 0.1
CHECKPOINTS_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True, kw_only=True)
class InfluenceConfig(config_lib.StudyConfig):
    """The influence study's parameters (see `run_influence`).

    config.json (`record`) records the training settings only when the study trains, and the
    flipped share and checkpoint learning rates as used.
    """

    STUDY = "influence"

    dataset: str = parameter("mnist1d", "mnist1d (generated offline), a TensorFlow Datasets "
                             "image set, or a synthetic set (hierarchical_images, "
                             "gaussian_blobs).", flag="enum", choices=DATASETS)
    model: str = parameter(
        "mlp", "mlp: fully connected 100-100; mnist1d_cnn: Greydanus' CNN for 1-D signals; fc: "
        "fully connected 500-300-100; cnn: three 3x3 convolutions (16, 32, 32) with "
        "max-pooling (on 1-D signals: mnist1d_cnn). With .weights.h5 checkpoints: the "
        "architecture they were saved from.", flag="enum", choices=MODELS)
    epochs: int = parameter(50, "Training epochs.", flag="integer", lower_bound=1)
    learning_rate: float = parameter(1e-3, "Adam's constant learning rate.",
                                     flag="positive_float")
    batch_size: int = parameter(32, "Mini-batch size of the Adam steps.", flag="integer",
                                lower_bound=1)
    num_test: int = parameter(100, "Test examples in the probe, drawn from the test split by "
                              "--seed.", flag="integer", lower_bound=1,
                              upper_bound=MAX_NUM_TEST)
    top_k: int = parameter(10, "Proponents and opponents kept per test example (the figures "
                           "draw up to 5).", flag="integer", lower_bound=1)
    kind: str = parameter("dot", "TracIn of gradient dot products, or of their cosines.",
                          flag="enum", choices=KINDS)
    flip_labels: float | None = parameter(
        None, "Share of training labels to flip before training, in [0, 1); none: 0.1 when "
        "training, 0 with --checkpoints.", flag="share")
    checkpoints: Sequence[str] | None = parameter(
        None, "Instead of training: comma-separated .keras files, or .weights.h5 files of "
        "--model (the loss: a .keras model's compiled loss, else cross-entropy on logits).",
        flag="list")
    checkpoint_learning_rates: Sequence[float] | None = parameter(
        None, "With --checkpoints: the learning rate eta of each, comma-separated; none: 1 "
        "each.", flag="nonnegative_float_list")
    seed: int = parameter(0, "Seed of the flipped labels, the test probe, initial weights and "
                          "batch order.", flag="integer", lower_bound=0)
    data_dir: str | None = parameter(None, config_lib.DATA_DIR_HELP, flag="string")
    max_train_examples: int | None = parameter(None, config_lib.TRAIN_SPLIT_HELP,
                                               flag="integer", lower_bound=1)
    data_options: Mapping[str, Any] | None = parameter(None)

    def check(self) -> None:
        _check(self.dataset, self.model, self.num_test, self.top_k, self.kind, self.flip_labels,
               self.checkpoints, self.checkpoint_learning_rates)
        super().check()

    def flipped_share(self) -> float:
        """`flip_labels`, or its default: `DEFAULT_FLIP` when training, 0 with checkpoints."""
        if self.flip_labels is None:
            return 0.0 if self.checkpoints else DEFAULT_FLIP
        return self.flip_labels

    def record(self, etas: Sequence[float] | None = None) -> dict[str, Any]:
        """config.json, with `etas` the checkpoints' learning rates as used."""
        trains = not self.checkpoints  # Training settings are recorded only if used.
        return {**super().record(),
                "epochs": self.epochs if trains else None,
                "learning_rate": self.learning_rate if trains else None,
                "batch_size": self.batch_size if trains else None,
                "flip_labels": self.flipped_share(),
                "checkpoints": None if trains else list(self.checkpoints),
                "checkpoint_learning_rates": None if trains else etas,
                "data_options": dict(self.data_options or {})}


def run_influence(
    output_dir: str,
    config: InfluenceConfig | None = None,
    *,
    verbose: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Trains (or takes checkpoints), computes TracIn, writes scores, rankings and figures.

    Default: MNIST-1D (4,000 training signals of length 40, 10 classes), 10 % of the training
    labels flipped, the MLP 40-100-100-10 trained 50 epochs with Adam 1e-3 (batch 32), TracIn
    over the 50 epoch-end checkpoints against 100 test signals.

    Args:
        output_dir: Output directory (locked while running; rerunning with the same
            arguments resumes, other arguments are refused).
        config: The study's parameters (default: `InfluenceConfig()`), `overrides` (its
            fields) replacing some; each also a keyword argument:
        dataset: One of `DATASETS`.
        model: One of `MODELS` (built for the data; with `.weights.h5` checkpoints, the
            architecture they were saved from).
        epochs, learning_rate, batch_size: Adam training (unused with `checkpoints`).
        num_test: Test examples in the probe (drawn from the test split by `seed`), at most
            `MAX_NUM_TEST`.
        top_k: Proponents and opponents kept per test example.
        kind: "dot" or "cosine" TracIn (`tfs.tracin`).
        flip_labels: Share of training labels to flip, in [0, 1); None: 0.1 when training,
            0 with `checkpoints` (flip with checkpoints only for checkpoints trained on labels
            flipped the same way, `label_noise.flip_labels(y, f, seed=seed)`).
        checkpoints: Instead of training: `.keras` files, or `.weights.h5` files of `model`.
            The loss is the compiled loss of a `.keras` model that has one, else
            cross-entropy on logits.
        checkpoint_learning_rates: eta of each checkpoint (default 1 each).
        seed: Seed of the flipped labels, the test probe, initial weights and batch order.
        data_dir: tfds data directory.
        method: `gradient_gram` method.
        max_train_examples: Use the first N training examples only.
        data_options: Options of `data.load` (synthetic generator options).
        verbose: Print progress lines.
        **overrides: Fields of `InfluenceConfig`.

    Returns:
        The summary (what ``summary.json`` holds).

    Raises:
        StudyInputError: a bad argument, unusable checkpoints, or data or a model that
            cannot be used; `run_directory.OutputDirError`, `run_directory.ConfigMismatchError`,
            `data.DatasetUnavailableError`: all before anything is written.
    """
    config = InfluenceConfig.build(config, **overrides)
    config.check()
    c, checkpoints = config, config.checkpoints
    run_directory.check_output_dir(output_dir)
    setup = _prepare(c.dataset, c.model, c.data_dir, c.max_train_examples, c.seed,
                     c.data_options, c.num_test, c.top_k, config.flipped_share(), checkpoints,
                     c.checkpoint_learning_rates)
    out = run_directory.OutputDir(output_dir, config.record(setup.get("etas")), name=config.STUDY,
                                  verbose=verbose, inputs=_inputs(setup, checkpoints))
    train = setup["train"]
    source = (f"{len(checkpoints)} given checkpoints" if checkpoints else
              f"model {c.model}, Adam {c.learning_rate:g}, batch {c.batch_size}, {c.epochs} "
              "epochs, a checkpoint per epoch")
    out.progress(f"{c.dataset}: {len(train)} training examples ({int(setup['flipped'].sum())} "
                 f"labels flipped), a probe of {c.num_test} test examples; {source}; TracIn "
                 f"({c.kind}) with the top {c.top_k} proponents and opponents")
    history: dict[str, np.ndarray] = {}
    if checkpoints:
        working, weights, etas, loss = (setup["working"], setup["weights"], setup["etas"],
                                        setup["loss"])
    else:
        working, weights, history = _train(out, setup, epochs=c.epochs,
                                           learning_rate=c.learning_rate,
                                           batch_size=c.batch_size, seed=c.seed)
        etas, loss = [float(c.learning_rate)] * c.epochs, setup["loss"]
    tracin = _tracin(out, setup, working, weights, etas, loss, c.kind, c.method)
    working.set_weights(weights[-1])  # The final model: its loss is the baseline.
    results, arrays, figures = influence_results.results(out, setup, working, loss, tracin,
                                                         history, c.top_k,
                                        checkpoints is None)
    from tfstiffness.outputs import tensorboard as summary

    step = len(weights)
    with out.step_events("influence", step) as writer:
        summary.write_scalars(writer, influence_results.scalars(results), step,
                              prefix="influence")
    headline = influence_results.headline(results)
    run_info = {"trained": not checkpoints}
    return runner.finish(out, results, arrays, figures, run_info, headline=headline,
                         figure_step=step)


# --------------------------------------------------------------------------------------------
# Arguments, data, model and checkpoints
# --------------------------------------------------------------------------------------------


def _check(dataset, model, num_test, top_k, kind, flip_labels, checkpoints,
           checkpoint_learning_rates) -> None:
    """Refuses bad arguments of `run_influence`, naming them (StudyInputError)."""
    error = StudyInputError
    if dataset not in DATASETS:
        raise error(f"dataset: expected one of {DATASETS}, got {dataset!r}")
    if model not in MODELS:
        raise error(f"model: expected one of {MODELS}, got {model!r}")
    if kind not in KINDS:
        raise error(f"kind: expected one of {KINDS}, got {kind!r}")
    for name, value, high in (("num_test", num_test, MAX_NUM_TEST), ("top_k", top_k, None)):
        if (not checks.is_int(value) or value < 1
                or (high is not None and value > high)):
            bound = f" and <= {high}" if high is not None else ""
            raise error(f"{name}: expected an integer >= 1{bound}, got {value!r}")
    if flip_labels is not None and (
            isinstance(flip_labels, bool) or not isinstance(flip_labels, (int, float))
            or not 0.0 <= flip_labels < 1.0):
        raise error(f"flip_labels: expected a share in [0, 1), got {flip_labels!r}")
    if checkpoint_learning_rates is not None and not checkpoints:
        raise error("checkpoint_learning_rates: given without checkpoints")
    if checkpoints is not None:
        from tfstiffness.influence.checkpoints import checked_checkpoints, checked_learning_rates

        try:  # Paths and learning rates; the files are loaded with the data.
            checked_checkpoints(checkpoints)
            if checkpoint_learning_rates is not None:
                checked_learning_rates(checkpoint_learning_rates, len(checkpoints))
        except (TypeError, ValueError) as err:
            raise error(str(err)) from None


def build_model(name: str, input_shape: Sequence[int], num_classes: int):
    """One of `MODELS` for inputs of `input_shape`, returning logits.

    Example:
        >>> build_model("mlp", (40,), 10).count_params()
        15210
    """
    from tfstiffness import models

    if name == "mlp":
        return models.fully_connected(input_shape, num_classes, widths=(100, 100))
    if name == "mnist1d_cnn":
        if len(input_shape) != 1:
            raise ValueError(f"mnist1d_cnn needs 1-D signals [L], got inputs of shape "
                             f"{tuple(input_shape)}; use --model mlp or cnn")
        return models.mnist1d_cnn(int(input_shape[0]), num_classes)
    return model_factory.build_model(name, input_shape, num_classes)


def _prepare(dataset, model, data_dir, max_train_examples, seed, data_options, num_test,
             top_k, fraction, checkpoints, checkpoint_learning_rates) -> dict[str, Any]:
    """Data, flipped labels, the test probe, the model factory and (given) checkpoints, all
    checked before anything is written."""
    import keras

    from tfstiffness import data
    from tfstiffness.influence.checkpoints import (
        checked_checkpoints,
        checked_learning_rates,
        load_checkpoints,
    )
    from tfstiffness.influence.label_noise import flip_labels

    error = StudyInputError
    try:
        train, test = runner.load_splits(dataset, data_dir, max_train_examples, None, seed,
                                         data_options)
    except data.DatasetUnavailableError:
        raise
    except ValueError as err:
        raise error(f"{dataset}: {err}") from None
    num_classes = int(train.num_classes)
    if top_k > len(train):
        raise error(f"top_k: expected at most the {len(train)} training examples, got {top_k}")
    if num_test > len(test):
        raise error(f"num_test: the {test.split} split has {len(test)} examples, got "
                    f"{num_test}")
    if fraction > 0:
        labels, flipped = flip_labels(train.y, fraction, num_classes, seed)
    else:
        labels, flipped = train.y.astype(np.int64), np.zeros(len(train), bool)
    test_indices = np.sort(np.random.default_rng((seed, 17)).choice(len(test), num_test,
                                                                     replace=False))

    def make_model():
        return build_model(model, train.x.shape[1:], num_classes)

    try:
        make_model()  # A check: the model must fit the data before anything is written.
    except ValueError as err:
        raise error(f"--model {model} on {dataset}: {err}") from None
    setup = {"train": train, "test": test, "labels": labels, "flipped": flipped,
             "num_classes": num_classes, "test_indices": test_indices,
             "make_model": make_model,
             "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    if not checkpoints:
        return setup
    entries = checked_checkpoints(list(checkpoints))  # Checked by `_check`.
    etas = ([1.0] * len(entries) if checkpoint_learning_rates is None else
            checked_learning_rates(checkpoint_learning_rates, len(entries)))
    needs_model = any(str(e).endswith(".weights.h5") for e in entries)
    try:
        working, weights = load_checkpoints(
            entries, make_model() if needs_model else None, compile=True)
        working.set_weights(weights[-1])
        logits = working(train.x[:2], training=False)
    except (TypeError, ValueError) as err:
        raise error(str(err)) from None
    shape = tuple(getattr(logits, "shape", ()))
    if shape != (min(2, len(train)), num_classes):
        raise error(f"checkpoints: the model gives outputs of shape {shape} for two "
                    f"{dataset} examples; expected ({min(2, len(train))}, {num_classes}) "
                    "(logits or probabilities of each class)")
    from tfstiffness.engine.losses import compiled_loss

    if compiled_loss(working)[0] is not None:
        setup["loss"] = None  # The checkpoint's own compiled loss.
    setup.update(working=working, weights=weights, etas=etas)
    return setup


def _inputs(setup: dict[str, Any], checkpoints: Sequence[str] | None) -> dict[str, str]:
    """Digests the stages depend on beyond config.json: the data, and the contents of each
    given checkpoint (config.json holds only their paths, so a replaced file is refused)."""
    from tfstiffness.outputs import stage_record

    digests = {"data": runner.data_digest(setup["train"], setup["test"])}
    for i, path in enumerate(checkpoints or (), start=1):
        digests[f"checkpoint {i} ({path}) contents"] = stage_record.file_digest(path)
    return digests


# --------------------------------------------------------------------------------------------
# Training, with a checkpoint file per epoch
# --------------------------------------------------------------------------------------------


def checkpoint_path(out: run_directory.OutputDir, epoch: int) -> Path:
    """The weights file of `epoch` (1-based): ``<output_dir>/checkpoints/epoch_007.weights.h5``
    for epoch 7."""
    return out.path / CHECKPOINTS_DIR / f"epoch_{epoch:03d}.weights.h5"


def _save_weights(model, path: Path) -> None:
    """`model.save_weights(path)`, atomically (written in a hidden temporary directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".checkpoint.", suffix=TMP_SUFFIX, dir=path.parent))
    try:
        model.save_weights(staging / path.name)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _train(out, setup, *, epochs, learning_rate, batch_size, seed):
    """(trained model, weights of each epoch's checkpoint, per-epoch metrics)."""
    from tfstiffness.outputs import tensorboard as summary

    train, test = setup["train"], setup["test"]
    labels, flipped = setup["labels"], setup["flipped"]
    eta_model = progress.EtaModel({"": (epochs, range(1, epochs + 1))})
    reports: list[int] = []

    def measure(model, epoch):
        _save_weights(model, checkpoint_path(out, epoch))
        values = {}
        values["train_loss"], values["train_accuracy"] = training.evaluate(model, train.x,
                                                                           labels)
        if flipped.any():
            values["train_clean_accuracy"] = training.evaluate(model, train.x, train.y)[1]
        values["test_loss"], values["test_accuracy"] = training.evaluate(model, test.x, test.y)
        return values

    def on_epoch(report: training.EpochReport) -> None:
        if not reports and report.epoch > 0:
            out.progress(f"resuming after epoch {report.epoch - 1} of {epochs} (the "
                         "checkpoint in stages/)")
        reports.append(report.epoch)
        if report.epoch == 0:  # The untrained model: not a TracIn checkpoint, not measured.
            return
        start = time.monotonic()
        values = report.measured
        with out.step_events("train", report.epoch) as writer:
            metrics = {"batch_loss": report.batch_loss, "loss": values["train_loss"],
                       "accuracy": values["train_accuracy"]}
            if "train_clean_accuracy" in values:
                metrics["clean_accuracy"] = values["train_clean_accuracy"]
            summary.write_scalars(writer, metrics, report.epoch, prefix="metrics")
        with out.step_events("test", report.epoch) as writer:
            summary.write_scalars(writer, {"loss": values["test_loss"],
                                           "accuracy": values["test_accuracy"]},
                                  report.epoch, prefix="metrics")
        written = time.monotonic() - start
        eta_model.record("", report.epoch, report.train_seconds,
                         report.measure_seconds + written)
        labels_note = " (trained-on labels)" if flipped.any() else ""
        out.progress(f"epoch {report.epoch}/{epochs}: mean batch loss {report.batch_loss:.3g}; "
                     f"train loss {float(values['train_loss']):.3g} acc "
                     f"{float(values['train_accuracy']):.3f}{labels_note}, test acc "
                     f"{float(values['test_accuracy']):.3f}", remaining=eta_model.remaining())

    run = training.train_resumable(
        out, setup["make_model"], train.x, labels, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, eval_epochs=range(1, epochs + 1), measure=measure,
        on_epoch=on_epoch)
    paths = [str(checkpoint_path(out, e)) for e in range(1, epochs + 1)]
    from tfstiffness.influence.checkpoints import load_checkpoints

    try:
        _, weights = load_checkpoints(paths, run.model, compile=False)
    except ValueError as err:  # A checkpoint file removed or damaged since it was written.
        raise StudyInputError(f"{out.path / CHECKPOINTS_DIR}: {err}; delete the output "
                              "directory to train again") from None
    history = {"epoch_loss": run.epoch_loss, **run.measurements}
    return run.model, weights, history


# --------------------------------------------------------------------------------------------
# TracIn
# --------------------------------------------------------------------------------------------


def _tracin(out, setup, working, weights, etas, loss, kind, method):
    """The `TracInResult` over every checkpoint (a stage: computed once)."""
    from tfstiffness.influence import TracInAccumulator, TracInResult

    if out.done("tracin"):
        s = out.load_stage("tracin")
        return TracInResult(kind=str(s["kind"]), learning_rates=s["learning_rates"],
                            self_influence=s["self_influence"],
                            test_self_influence=s["test_self_influence"],
                            method=str(s["method"]), scores=s["scores"],
                            num_zero_gradient=int(s["num_zero_gradient"]))
    test, index = setup["test"], setup["test_indices"]
    accumulator = TracInAccumulator(setup["train"].x, setup["labels"], test.x[index],
                                    test.y[index], loss=loss, kind=kind, method=method,
                                    verbose=False)
    every = math.ceil(len(weights) / 10)  # About ten progress lines.
    for t, (w, eta) in enumerate(zip(weights, etas), start=1):
        working.set_weights(w)
        accumulator.add(working, eta)
        if t % every == 0 or t == len(weights):
            out.progress(f"TracIn: checkpoint {t}/{len(weights)} done", done=t,
                         total=len(weights))
    result = accumulator.result()
    out.save_stage("tracin", {
        "kind": np.array(result.kind), "learning_rates": result.learning_rates,
        "self_influence": result.self_influence,
        "test_self_influence": result.test_self_influence, "method": np.array(result.method),
        "scores": result.scores, "num_zero_gradient": np.int64(result.num_zero_gradient)})
    return result


# --------------------------------------------------------------------------------------------
# Results and figures
# --------------------------------------------------------------------------------------------
