"""The shared runner of the studies: checked inputs, data and probes, the measured and
resumable training loop, live TensorBoard, progress with an honest estimate, and the final files.

A study module (`class_stiffness`, `learning_rate_study`, ...) holds its own logic (what to
compute, which figures) and uses this module for everything every study does, in this order:

1. `check_arguments` and `run_directory.check_output_dir`: bad arguments and unusable output
   paths are refused (`StudyInputError`) before anything is loaded or written;
2. `prepare`: the data (a missing tfds set fails fast, `data.DatasetUnavailableError`), the
   fixed class-balanced probes (`probes.ProbeSets`, the one measuring path shared with
   `StiffnessCallback`) and a model factory; the model is built once here, as a check;
3. `run_directory.OutputDir`: the directory is locked, ``config.json`` written or compared;
4. `train_measured`: `training.train_resumable` (Adam, checkpointed each epoch) measuring the
   probes at the chosen epochs and writing TensorBoard live, one event file per step and run
   (``stiffness``, ``train``, ``validation``), so a resumed run never duplicates a point;
   one progress line per epoch with the time left (`EtaModel`);
5. `finish`: ``results.npz``, figures, ``summary.json``, and the last lines naming what was
   written and the ``tensorboard --logdir`` command.

Example:
    >>> check_arguments(batch_size=32, learning_rate=1e-3)  # Fine: nothing raised.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness import training
from tfstiffness.engine import structure
from tfstiffness.outputs import run_directory
from tfstiffness.probes import XI_STATUSES, ProbeSets
from tfstiffness.errors import StudyInputError  # noqa: F401 (re-exported)

__all__ = [
    "CRITICAL_LENGTH_NOTE",
    "KINDS",
    "MODELS",
    "PAIRS",
    "EtaModel",
    "Prepared",
    "StudyInputError",
    "alignment_stats",
    "bootstrap_note",
    "build_model",
    "check_arguments",
    "critical_lengths",
    "curve_at",
    "finish",
    "fit_sgd",
    "format_number",
    "interval_end",
    "linear_fit_dict",
    "load_splits",
    "model_inputs",
    "pair_stats",
    "prepare",
    "set_weights",
    "train_measured",
    "validation_split",
    "weights_arrays",
    "write_epoch_losses",
    "xi_dict",
]

#: Model names accepted by `build_model`.
MODELS = ("fc", "cnn", "resnet20", "transformer", "bert_tiny")
#: Probe pairings: rows from the first probe set, columns from the second.
PAIRS = ("train_train", "train_val", "val_val")
KINDS = ("sign", "cosine")
#: Images drawn into TensorBoard at each measurement (class matrix, stiffness vs distance):
#: cosine only, to keep a measurement's rendering cost to a few figures.
IMAGE_KINDS = ("cosine",)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def check_arguments(**values: Any) -> None:
    """Refuses bad study arguments, naming them. Rules by name:

    ``epochs`` an integer >= 1; ``batch_size``, ``probe_per_class``, ``bins``,
    ``loss_levels``, ``grid_n`` integers >= 1; ``max_train_examples``, ``max_val_examples``
    None or integers >= 1; ``learning_rate`` and each of ``learning_rates`` a finite number
    > 0; ``seed`` and ``bootstrap_samples`` integers >= 0; ``seeds`` None or distinct
    integers >= 0; ``method`` a `gradient_gram` method. Others are not checked here.

    Raises:
        StudyInputError: naming the argument, the value and what was expected.

    Example:
        >>> check_arguments(batch_size=-5)
        Traceback (most recent call last):
        ...
        tfstiffness.studies.runner.StudyInputError: batch_size: expected an integer >= 1, got -5
    """
    for name, value in values.items():
        if name in ("epochs", "batch_size", "probe_per_class", "bins", "loss_levels",
                    "grid_n") or (name.startswith("max_") and value is not None):
            _check_int(name, value, 1)
        elif name in ("seed", "bootstrap_samples"):
            _check_int(name, value, 0)
        elif name == "seeds" and value is not None:
            seeds = list(value)
            if not seeds:
                raise StudyInputError("seeds: expected at least one seed")
            for seed in seeds:
                _check_int("seeds", seed, 0)
            if len(set(seeds)) != len(seeds):
                raise StudyInputError(f"seeds: expected distinct values, got {seeds}")
        elif name in ("learning_rate", "learning_rates"):
            rates = list(value) if name == "learning_rates" else [value]
            if not rates:
                raise StudyInputError(f"{name}: expected at least one learning rate")
            for rate in rates:
                if (isinstance(rate, bool) or not isinstance(rate, (int, float, np.number))
                        or not math.isfinite(rate) or rate <= 0):
                    raise StudyInputError(f"{name}: expected a finite number > 0, got {rate!r}")
            if len(set(rates)) != len(rates):
                raise StudyInputError(f"{name}: expected distinct values, got {rates}")
        elif name == "method":
            methods = ("auto", "ghost", "vmap", "jacobian")
            if value not in methods:
                raise StudyInputError(f"method: expected one of {methods}, got {value!r}")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise StudyInputError(f"{name}: expected an integer >= {low}, got {value!r}")


def merged_options(defaults: Mapping[str, Mapping[str, Any]], dataset: str,
                   options: Mapping[str, Any] | None) -> dict[str, Any]:
    """`options` over a study's default generator options for `dataset`.

    Example:
        >>> merged_options({"blobs": {"dim": 2, "spread": 1.0}}, "blobs", {"dim": 5})
        {'dim': 5, 'spread': 1.0}
    """
    return {**dict(defaults.get(dataset, {})), **dict(options or {})}


# --------------------------------------------------------------------------------------------
# Data, models and probes
# --------------------------------------------------------------------------------------------


def validation_split(dataset: str) -> str:
    """The split used as validation data: tfds image sets have only train/test.

    Example:
        >>> validation_split("mnist"), validation_split("glue/sst2")
        ('test', 'validation')
    """
    if dataset in ("glue/sst2", "hierarchical_images", "gaussian_blobs", "synthetic_text",
                   "two_arcs"):
        return "validation"
    return "test"


def load_splits(
    dataset: str,
    data_dir: str | None = None,
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
):
    """(train, validation) `data.LoadedData` of a data set (see `tfstiffness.data.load`).

    Args:
        dataset: A name of `tfstiffness.data.DATASETS`.
        data_dir: tfds data directory.
        max_train_examples: Keep the first N training examples (None: all).
        max_val_examples: Keep the first N validation examples (None: all).
        seed: Seed of a synthetic generator.
        options: Keyword arguments of `data.load`: generator options of a synthetic set
            (e.g. ``num_per_class``, ``noise``), ``vocab_size``, ``sequence_length``.

    Example:
        >>> train, val = load_splits("gaussian_blobs", options={"num_per_class": 4})
        >>> len(train), len(val)
        (12, 12)
    """
    from tfstiffness import data  # tensorflow-datasets is slow to import.

    options = dict(options or {})
    train = data.load(dataset, "train", data_dir=data_dir, max_examples=max_train_examples,
                      seed=seed, **options)
    val = data.load(dataset, validation_split(dataset), data_dir=data_dir,
                    max_examples=max_val_examples, seed=seed, **options)
    return train, val


def build_model(name: str, input_shape: Sequence[int], num_classes: int,
                vocab_size: int | None = None, **options: Any):
    """One of the paper's models (`tfstiffness.models`), returning logits.

    "fc": fully connected 500-300-100; "cnn": the CNN for the data's shape, the paper's three
    3x3 convolutions (16, 32, 32) with 2x2 max-pooling for images [H, W, C], Greydanus'
    MNIST-1D CNN (three stride-2 Conv1D layers of 25 channels, `models.mnist1d_cnn`) for
    signals [L]; "resnet20": ResNet20v1 without batch normalisation; "transformer": the small
    transformer classifier (needs `vocab_size`; `options` go to it, e.g. ``embed_dim``);
    "bert_tiny": keras_hub's BERT classifier in a small configuration with random weights
    (`text_transformer.bert_tiny`; needs `vocab_size`; dict inputs, see `model_inputs`).

    Example:
        >>> build_model("cnn", (32, 32, 3), 10).count_params()
        19466
        >>> build_model("cnn", (40,), 10).name
        'mnist1d_cnn'
    """
    from tfstiffness import models

    if name == "fc":
        return models.fully_connected(input_shape, num_classes)
    if name == "cnn":
        if len(input_shape) == 3:
            return models.paper_cnn(input_shape, num_classes)
        if len(input_shape) == 1:
            return models.mnist1d_cnn(int(input_shape[0]), num_classes)
        raise ValueError(f"the cnn needs images [H, W, C] or signals [L], got inputs of shape "
                         f"{tuple(input_shape)}; use --model fc")
    if name == "resnet20":
        if len(input_shape) != 3:
            raise ValueError(f"resnet20 needs images [H, W, C], got inputs of shape "
                             f"{tuple(input_shape)}; use --model fc")
        return models.resnet20v1(input_shape, num_classes)
    if name in ("transformer", "bert_tiny"):
        if vocab_size is None:
            raise ValueError(f"the {name} needs vocab_size (a text data set)")
        if name == "transformer":
            return models.transformer_classifier(vocab_size, int(input_shape[0]), num_classes,
                                                 **options)
        from tfstiffness.studies.text_transformer import bert_tiny

        return bert_tiny(vocab_size, int(input_shape[0]), num_classes, **options)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def model_inputs(name: str, x: np.ndarray) -> Any:
    """The inputs model `name` takes for data inputs `x` (`data.LoadedData.x`).

    The data's own arrays, except for "bert_tiny", whose keras_hub classifier takes a dict:
    ``token_ids`` (the package tokenizer's ids, 0 = padding), ``padding_mask`` (1 where the
    id is not padding) and ``segment_ids`` (0: one segment).

    Example:
        >>> sorted(model_inputs("bert_tiny", np.array([[5, 3, 0]])))
        ['padding_mask', 'segment_ids', 'token_ids']
    """
    if name != "bert_tiny":
        return x
    ids = np.asarray(x).astype(np.int32)
    return {"token_ids": ids, "padding_mask": (ids != 0).astype(np.int32),
            "segment_ids": np.zeros_like(ids)}


def _vocab_size(train, options: Mapping[str, Any]) -> int | None:
    if train.vocabulary is not None:
        return len(train.vocabulary)
    if train.x.dtype.kind in "iu":  # Synthetic text: ids below the generator's vocab_size.
        return int(options.get("vocab_size", 100))
    return None


@dataclasses.dataclass
class Prepared:
    """What `prepare` returns: data, probes and a model factory.

    Attributes:
        train, val: `data.LoadedData` of the training and validation splits.
        num_classes: Classes K.
        train_idx, val_idx: Indices of the probes in their splits (val_idx None without a
            validation probe).
        probes: The `probes.ProbeSets` measured at each measured epoch.
        make_model: Builds the untrained model (seed Keras first).
        train_x, val_x: The splits' inputs as the model takes them (`model_inputs`: the
            data's arrays, or a dict of them); None means ``train.x`` and ``val.x``.
    """

    train: Any
    val: Any
    num_classes: int
    train_idx: np.ndarray
    val_idx: np.ndarray | None
    probes: ProbeSets
    make_model: Callable[[], Any]
    train_x: Any = None
    val_x: Any = None

    def __post_init__(self) -> None:
        if self.train_x is None:
            self.train_x = self.train.x
        if self.val_x is None:
            self.val_x = self.val.x


def prepare(
    dataset: str,
    *,
    data_dir: str | None,
    max_train_examples: int | None,
    max_val_examples: int | None,
    seed: int,
    data_options: Mapping[str, Any] | None,
    probe_per_class: int,
    model: str,
    model_options: Mapping[str, Any] | None = None,
    val_probe: bool = True,
    method: str = "auto",
    bins: int = 20,
    representation: Callable[[Any, np.ndarray], np.ndarray] | None = None,
    bootstrap_samples: int = 0,
) -> Prepared:
    """Loads the data, draws the fixed class-balanced probes and checks the model builds.

    The probes measure with `bootstrap_samples` bootstrap resamples (0: no intervals), seeded
    by `seed`; the model's inputs come from `model_inputs`.

    Raises:
        StudyInputError: the data cannot be loaded or probed, or the model does not fit the
            data (e.g. a CNN on token ids), with the reason.
        data.DatasetUnavailableError: a tfds set is neither in `data_dir` nor downloadable.
    """
    import keras

    from tfstiffness import data

    try:
        train, val = load_splits(dataset, data_dir, max_train_examples, max_val_examples, seed,
                                 data_options)
        num_classes = int(train.num_classes)
        # Probes: fixed, class-balanced, from the seed. Labels are 0..K-1 for every set here.
        train_idx = data.balanced_subset(train.x, train.y, probe_per_class, seed)
        val_idx = (data.balanced_subset(val.x, val.y, probe_per_class, seed + 1)
                   if val_probe else None)
    except data.DatasetUnavailableError:
        raise
    except ValueError as err:
        raise StudyInputError(f"{dataset}: {err}") from None
    vocab = _vocab_size(train, data_options or {})

    def make_model():
        return build_model(model, train.x.shape[1:], num_classes, vocab_size=vocab,
                           **(model_options or {}))

    try:
        make_model()  # A check: the model must fit the data before anything is written.
    except ValueError as err:
        raise StudyInputError(f"--model {model} on {dataset}: {err}") from None
    train_x, val_x = model_inputs(model, train.x), model_inputs(model, val.x)
    probes = ProbeSets(
        structure.take(train_x, train_idx), train.y[train_idx],
        *((structure.take(val_x, val_idx), val.y[val_idx]) if val_probe else (None, None)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        num_classes=num_classes, fine_to_coarse=train.fine_to_coarse, kinds=KINDS,
        distance_bins=bins, method=method, representation=representation,
        bootstrap_samples=bootstrap_samples, bootstrap_seed=seed)
    return Prepared(train, val, num_classes, train_idx, val_idx, probes, make_model,
                    train_x=train_x, val_x=val_x)


# --------------------------------------------------------------------------------------------
# The measured training loop
# --------------------------------------------------------------------------------------------


class EtaModel:
    """Time left in a study, from the costs of unmeasured and measured epochs seen so far.

    An epoch costs its training, a measured epoch also its measurement (a Gram matrix, the
    measures and the images: several unmeasured epochs' worth). The first epoch and the first
    measurement of each run also pay for tracing TensorFlow functions. So the estimate is
    ``epochs left x mean training time + measurements left x mean measurement time``, each
    mean over this process's observations after a run's first, plus the first-time overhead
    (first minus mean) once for each run not started yet, plus the final figures, each
    costed like a figure drawn for TensorBoard during a measurement.

    Args:
        schedule: run label -> (epochs, measured epochs) of every run of the study.
        final_figures: Figures drawn at the end.

    Example:
        >>> eta = EtaModel({"": (4, [0, 2, 4])})
        >>> eta.remaining() is None  # Nothing seen yet.
        True
        >>> for e, train, measure in [(0, 0, 5.0), (1, 2.0, 0), (2, 1.0, 2.0)]:
        ...     eta.record("", e, train, measure)
        >>> eta.remaining()  # 2 epochs of 1 s, 1 measurement of 2 s.
        4.0
    """

    def __init__(self, schedule: Mapping[str, tuple[int, Sequence[int]]],
                 final_figures: int = 0):
        self._final_figures = final_figures
        self._image_seconds: list[float] = []
        self._todo = {label: (set(range(1, epochs + 1)), {int(e) for e in measured})
                      for label, (epochs, measured) in schedule.items()}
        self._train: dict[str, list[float]] = {}
        self._measure: dict[str, list[float]] = {}

    def record(self, label: str, epoch: int, train_seconds: float, measure_seconds: float,
               images: int = 0, image_seconds: float = 0.0) -> None:
        """Marks `epoch` of run `label` done (and any earlier one, finished before a resume).

        Args:
            label: The run.
            epoch: The epoch done (0: the initial measurement).
            train_seconds: Its training time.
            measure_seconds: Its measurement time, writing its summaries included.
            images: Figures drawn for the summaries, in `image_seconds`: their mean cost
                estimates the final figures' (`final_figures`).
            image_seconds: Time spent writing the summaries (a part of `measure_seconds`).
        """
        if images:
            self._image_seconds.append(image_seconds / images)
        epochs, measured = self._todo[label]
        epochs -= {e for e in epochs if e <= epoch}
        measured -= {e for e in measured if e < epoch}
        if epoch > 0:  # (After a resume, the first epoch pays for tracing again.)
            self._train.setdefault(label, []).append(train_seconds)
        if epoch in measured:
            measured.discard(epoch)
            self._measure.setdefault(label, []).append(measure_seconds)

    def remaining(self) -> float | None:
        """Estimated seconds left; None until a training epoch and a measurement were seen."""
        train_mean, train_extra = _mean_and_overhead(self._train)
        measure_mean, measure_extra = _mean_and_overhead(self._measure)
        epochs_left = sum(len(epochs) for epochs, _ in self._todo.values())
        measures_left = sum(len(measured) for _, measured in self._todo.values())
        if (epochs_left and train_mean is None) or (measures_left and measure_mean is None):
            return None
        total = 0.0
        if self._final_figures and self._image_seconds:
            total += self._final_figures * float(np.median(self._image_seconds))
        for label, (epochs, measured) in self._todo.items():
            if epochs:
                total += len(epochs) * train_mean
                if label not in self._train:
                    total += train_extra
            if measured:
                total += len(measured) * measure_mean
                if label not in self._measure:
                    total += measure_extra
        return total


def _mean_and_overhead(seconds: Mapping[str, list[float]]) -> tuple[float | None, float]:
    """(mean cost after each run's first unit, mean extra cost of a first unit)."""
    later = [s for runs in seconds.values() for s in runs[1:]]
    firsts = [runs[0] for runs in seconds.values() if runs]
    if not firsts:
        return None, 0.0
    if not later:
        return float(np.mean(firsts)), 0.0
    mean = float(np.mean(later))
    return mean, max(float(np.mean(firsts)) - mean, 0.0)


def format_number(value: Any, digits: int = 3) -> str:
    """``0.123``, or ``n/a`` for NaN/None.

    Example:
        >>> format_number(0.12345), format_number(float("nan"))
        ('0.123', 'n/a')
    """
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def train_measured(
    out: run_directory.OutputDir,
    prepared: Prepared,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    eval_epochs: Sequence[int],
    eval_sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    eta: EtaModel,
    label: str = "",
    run_prefix: str = "",
) -> training.TrainingRun:
    """Trains with Adam (`training.train_resumable`) and measures the probes at `eval_epochs`.

    A measurement is `prepared.probes.measure(model)` (every stiffness measure of every
    pair set), the `gradient_gram` method used (``gram_method``), and the loss and accuracy
    of each of `eval_sets` (a full pass in inference mode: ``<set>_loss``,
    ``<set>_accuracy``). Each epoch's TensorBoard events are written as they happen, one
    file per step and run (`run_directory.OutputDir.step_events`): ``<run_prefix>stiffness``
    (scalars, histograms, cosine images), ``<run_prefix>train`` (``metrics/batch_loss``:
    the epoch's mean mini-batch loss, every epoch; ``metrics/loss`` and ``metrics/accuracy``
    of the full pass, at measured epochs) and ``<run_prefix>validation`` (the same full-pass
    tags, so TensorBoard overlays train and validation). One progress line per epoch.

    Args:
        out: The locked output directory.
        prepared: What `prepare` returned.
        epochs, learning_rate, batch_size, seed, eval_epochs: as `training.train_resumable`.
        eval_sets: name ("train", "val") -> (x, y) evaluated at each measured epoch.
        eta: The study's `EtaModel`.
        label: The run's label (stage prefix and progress label; several runs in one study).
        run_prefix: Prefix of the TensorBoard run names (e.g. ``"lr=0.001/"``).

    Returns:
        The `training.TrainingRun`.
    """
    latest: dict[int, Any] = {}
    tb_name = {"train": "train", "val": "validation"}
    reports: list[int] = []

    def measure(model, epoch):
        measurement = prepared.probes.measure(model)
        latest.clear()
        latest[epoch] = measurement
        values = dict(measurement.values, gram_method=np.array(measurement.gram_method))
        for name, (x, y) in eval_sets.items():
            loss, accuracy = training.evaluate(model, x, y)
            values[f"{name}_loss"], values[f"{name}_accuracy"] = loss, accuracy
        return values

    def on_epoch(report: training.EpochReport) -> None:
        from tfstiffness.outputs import tensorboard as summary

        start = time.monotonic()
        step, values = report.epoch, report.measured
        if not reports and step > 0:
            who = (run_prefix.rstrip("/") or label.rstrip("_"))
            who = f"{who}: " if who else ""
            out.progress(f"{who}resuming after epoch {step - 1} of {report.epochs} (the "
                         "checkpoint in stages/)")
        reports.append(step)
        images, image_seconds = 0, 0.0
        if values is not None:
            with out.step_events(f"{run_prefix}stiffness", step) as writer:
                prepared.probes.write(writer, latest[step], step, images=IMAGE_KINDS)
            images = 2 * len(prepared.probes.pair_sets) * len(IMAGE_KINDS)
            image_seconds = time.monotonic() - start

        for name in eval_sets:
            metrics = {}
            if name == "train" and report.batch_loss is not None:
                metrics["batch_loss"] = report.batch_loss
            if values is not None:
                metrics["loss"] = values[f"{name}_loss"]
                metrics["accuracy"] = values[f"{name}_accuracy"]
            if metrics:
                with out.step_events(f"{run_prefix}{tb_name.get(name, name)}", step) as writer:
                    summary.write_scalars(writer, metrics, step, prefix="metrics")
        written = time.monotonic() - start
        eta.record(report.label, step, report.train_seconds, report.measure_seconds + written,
                   images=images, image_seconds=image_seconds)
        out.progress(_epoch_line(report, run_prefix.rstrip("/") or label),
                     remaining=eta.remaining())

    return training.train_resumable(
        out, prepared.make_model, prepared.train_x, prepared.train.y, epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, seed=seed, eval_epochs=eval_epochs,
        measure=measure, label=label, on_epoch=on_epoch)


def _epoch_line(report: training.EpochReport, label: str) -> str:
    """`label epoch e/E: mean batch loss ...; measured: ...`."""
    who = f"{label.rstrip('_')} " if label else ""
    if report.epoch == 0:
        line = f"{who}epoch 0/{report.epochs} (untrained)"
    else:
        line = (f"{who}epoch {report.epoch}/{report.epochs}: mean batch loss "
                f"{report.batch_loss:.3g}")
    values = report.measured
    if values is not None:
        parts = []
        for name in ("train", "val"):
            if f"{name}_loss" in values:
                parts.append(f"{name} loss {float(values[f'{name}_loss']):.3g} acc "
                             f"{format_number(values[f'{name}_accuracy'])}")
        key = "train_train/cosine"
        parts.append(f"cosine within {format_number(values[f'{key}/within'])} between "
                     f"{format_number(values[f'{key}/between'])}")
        line += "; measured: " + ", ".join(parts)
    return line


# --------------------------------------------------------------------------------------------
# SGD stages (Walker's studies)
# --------------------------------------------------------------------------------------------


def fit_sgd(model, x: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float,
            batch_size: int, seed: int, loss: Any,
            on_epoch: Callable[[int, float, float], None] | None = None) -> np.ndarray:
    """Plain SGD with shuffled mini-batches (`model.fit`); returns each epoch's mean batch loss.

    Seeded here (`seed` + 1), not only at start-up, so that a resumed study trains a stage
    with the same batch order as an uninterrupted one whatever stages it skipped.

    Args:
        on_epoch: Called as ``on_epoch(epoch, mean_batch_loss, seconds)`` after each epoch
            (1-based).
    """
    import keras

    class _Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if on_epoch is not None:
                on_epoch(epoch + 1, float((logs or {}).get("loss", math.nan)),
                         time.monotonic() - self.start)

    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=loss)
    keras.utils.set_random_seed(seed + 1)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                        callbacks=[_Report()])
    return np.asarray(history.history["loss"], dtype=np.float64)


def weights_arrays(model) -> dict[str, np.ndarray]:
    """The model's weights as ``weight_<i>`` arrays (for a stage checkpoint)."""
    return {f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}


def set_weights(model, arrays: Mapping[str, np.ndarray]) -> None:
    """Restores weights saved by `weights_arrays`."""
    model.set_weights([arrays[f"weight_{i}"] for i in range(len(model.get_weights()))])


def write_epoch_losses(out: run_directory.OutputDir, run: str, losses: Sequence[float]) -> None:
    """A stage's per-epoch mean batch losses as ``metrics/batch_loss`` of TensorBoard run
    `run`, steps 1..E, in one event file (written again, identically, if the stage is redone)."""
    from tfstiffness.outputs import tensorboard as summary

    with out.step_events(run, len(losses)) as writer:
        for epoch, loss in enumerate(losses, start=1):
            summary.write_scalars(writer, {"batch_loss": loss}, epoch, prefix="metrics")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


#: summary.json's note on the two critical-length estimators.
CRITICAL_LENGTH_NOTE = (
    "xi_crossing: the distance where the binned within-class stiffness first crosses zero "
    "(linear interpolation between the two bins around it); when it never crosses, xi is "
    "beyond 'bound', the largest distance binned, and no number is given. xi_linear_fit: "
    "where a straight line fitted to the bin means (weighted by their pair counts) reaches "
    "zero; 'extrapolated' is true when that distance lies outside the distances measured "
    "(a slope >= 0 gives no xi: status no_decay). See measures.critical_length.")


def bootstrap_note(samples: int, seed: int, confidence: float = 0.95) -> dict[str, Any] | None:
    """summary.json's description of the bootstrap intervals (None without them).

    Example:
        >>> bootstrap_note(200, 0)["samples"]
        200
    """
    if not samples:
        return None
    return {"samples": int(samples), "confidence": confidence, "seed": int(seed),
            "method": "percentile bootstrap; probe examples resampled with replacement within "
                      "each class; every statistic recomputed from the Gram matrix already "
                      "measured (tfstiffness.measures.uncertainty.bootstrap)",
            "infinite_ends": "an xi interval end '+inf' ('-inf') means that more than the "
                             "tail's share of resamples had no xi below (above) the distances "
                             "measured"}


def xi_dict(xi: float, status: int, bound: float) -> dict[str, Any]:
    """{"xi", "status", "bound"} of a crossing critical length stored as numbers (status < 0:
    no pair).

    Example:
        >>> xi_dict(float("nan"), 1, 1.25)
        {'xi': None, 'status': 'never_crossed', 'bound': 1.25}
    """
    if status < 0:
        return {"xi": None, "status": "no_pairs", "bound": None}
    return {"xi": None if np.isnan(xi) else float(xi), "status": XI_STATUSES[int(status)],
            "bound": None if np.isnan(bound) else float(bound)}


def linear_fit_dict(xi: float, status: int, slope: float, r_squared: float,
                    extrapolated: float, intercept: float = math.nan) -> dict[str, Any]:
    """{"xi", "status", "slope", "intercept", "r_squared", "extrapolated"} of a linear-fit
    critical length stored as numbers (NaN -> None; status < 0: no pair).

    Example:
        >>> linear_fit_dict(2.5, 3, -0.1, 0.8, 1.0)["extrapolated"]
        True
    """
    if status < 0:
        status = XI_STATUSES.index("no_pairs")

    def number(value: float) -> float | None:
        return None if value is None or not math.isfinite(float(value)) else float(value)

    fitted = number(xi) is not None
    return {"xi": number(xi), "status": XI_STATUSES[int(status)], "slope": number(slope),
            "intercept": number(intercept), "r_squared": number(r_squared),
            "extrapolated": bool(extrapolated == 1) if fitted else None}


def interval_end(value: float) -> float | str | None:
    """An interval end for JSON: a number, "+inf" / "-inf" (an xi beyond the distances
    measured in more than the tail's share of resamples), or None (undefined).

    Example:
        >>> interval_end(0.5), interval_end(float("inf")), interval_end(float("nan"))
        (0.5, '+inf', None)
    """
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return value


def _interval_entries(m: Mapping[str, np.ndarray], e: int, prefix: str) -> dict[str, Any]:
    """STAT -> {"low", "high"} of every ``PREFIX STAT_ci_low`` / ``_ci_high`` pair."""
    intervals = {}
    for key in m:
        if key.startswith(prefix) and key.endswith("_ci_low") and "/" not in key[len(prefix):]:
            stat = key[len(prefix):-len("_ci_low")]
            intervals[stat] = {"low": interval_end(m[key][e]),
                               "high": interval_end(m[f"{prefix}{stat}_ci_high"][e])}
    return intervals


def critical_lengths(m: Mapping[str, np.ndarray], e: int, pair: str,
                     kind: str) -> dict[str, dict[str, Any]]:
    """{"xi_crossing": `xi_dict`, "xi_linear_fit": `linear_fit_dict`} of one pair set and
    kind at measured epoch index `e` (statuses "no_pairs" without a curve)."""
    key = f"{pair}/{kind}"
    if f"{key}/xi_crossing_status" not in m:
        return {"xi_crossing": xi_dict(np.nan, -1, np.nan),
                "xi_linear_fit": linear_fit_dict(np.nan, -1, np.nan, np.nan, np.nan)}
    return {"xi_crossing": xi_dict(m[f"{key}/xi_crossing"][e], m[f"{key}/xi_crossing_status"][e],
                                   m[f"{key}/xi_crossing_bound"][e]),
            "xi_linear_fit": linear_fit_dict(
                m[f"{key}/xi_linear_fit"][e], m[f"{key}/xi_linear_fit_status"][e],
                m[f"{key}/xi_linear_fit_slope"][e], m[f"{key}/xi_linear_fit_r2"][e],
                m[f"{key}/xi_linear_fit_extrapolated"][e],
                m[f"{key}/xi_linear_fit_intercept"][e]
                if f"{key}/xi_linear_fit_intercept" in m else math.nan)}


def pair_stats(m: Mapping[str, np.ndarray], e: int, pair: str, kind: str) -> dict[str, Any]:
    """Every scalar measure of one pair set and kind at measured epoch index `e`, with xi by
    both estimators (`critical_lengths`) and, when measured, the bootstrap intervals
    (``"intervals": {stat: {"low", "high"}}``, ends as `interval_end`).

    Scalars are taken generically (every 0-d measure of `probes.ProbeSets` except the xi
    bookkeeping and the interval ends), so a measure added there reaches summary.json
    without a change here.
    """
    prefix = f"{pair}/{kind}/"
    stats: dict[str, Any] = {}
    for key, series in m.items():
        if not key.startswith(prefix) or series.ndim != 1 or "/" in key[len(prefix):]:
            continue
        name = key[len(prefix):]
        if name.startswith("xi_") or name.endswith(("_ci_low", "_ci_high")):
            continue
        value = float(series[e])
        stats[name] = value if math.isfinite(value) else None
    stats.update(critical_lengths(m, e, pair, kind))
    intervals = _interval_entries(m, e, prefix)
    if intervals:
        stats["intervals"] = intervals
    return stats


def alignment_stats(m: Mapping[str, np.ndarray], e: int, pair: str) -> dict[str, Any]:
    """The gradient-alignment measures of one pair set at measured epoch index `e`: scalars,
    ``class_m_coherence`` as a list, and the intervals as in `pair_stats`."""
    prefix = f"{pair}/alignment/"
    stats: dict[str, Any] = {}
    for key, series in m.items():
        if not key.startswith(prefix) or key.endswith(("_ci_low", "_ci_high")):
            continue
        value = series[e]
        stats[key[len(prefix):]] = (float(value) if math.isfinite(value) else None) if (
            np.ndim(value) == 0) else [float(v) if math.isfinite(v) else None for v in value]
    intervals = _interval_entries(m, e, prefix)
    if intervals:
        stats["intervals"] = intervals
    return stats


def curve_at(m: Mapping[str, np.ndarray], e: int, pair: str = "train_train",
             kind: str = "cosine"):
    """(curve, (crossing, linear fit)) of measured epoch index `e`, as
    `plots.stiffness_vs_distance` takes them, or None when the pair set has no within-class
    pair."""
    from types import SimpleNamespace

    key = f"{pair}/{kind}"
    if f"{key}/curve_edges" not in m:
        return None
    edges = m[f"{key}/curve_edges"][e]
    counts = m[f"{key}/curve_counts"][e]
    curve = SimpleNamespace(edges=edges, means=m[f"{key}/curve_means"][e], counts=counts,
                            pairs="within", centres=0.5 * (edges[1:] + edges[:-1]))
    xi = critical_lengths(m, e, pair, kind)
    filled = np.flatnonzero(np.asarray(counts) > 0)
    distance_range = ((float(edges[filled[0]]), float(edges[filled[-1] + 1])) if filled.size
                      else None)
    crossing = SimpleNamespace(method="crossing", **xi["xi_crossing"])
    fit = SimpleNamespace(method="linear_fit", distance_range=distance_range,
                          **xi["xi_linear_fit"])
    return curve, (crossing, fit)


def finish(
    out: run_directory.OutputDir,
    results: Mapping[str, Any],
    arrays: Mapping[str, Any],
    figures: Mapping[str, Any],
    run_info: Mapping[str, Any],
    headline: Sequence[str] = (),
    figure_step: int = 0,
) -> dict[str, Any]:
    """Writes results.npz, the figures (files, and TensorBoard run ``figures``) and
    summary.json; prints `headline` lines, what was written and the TensorBoard command.

    Returns:
        The summary, as written to summary.json.
    """
    from tfstiffness.outputs import tensorboard as summary

    out.write_results(**arrays)
    if figures:
        with out.step_events("figures", figure_step) as writer:
            for name, fig in figures.items():
                path = out.save_figure(fig, f"{name}.png")  # Rendered once: file and summary.
                summary.write_png(writer, path.read_bytes(), f"figures/{name}", figure_step)
    out.write_summary(results, run={"elapsed_s": out.elapsed, **run_info,
                                    "figures": sorted(figures)})
    for line in headline:
        out.progress(line)
    for line in written_lines(out.path, [f"{name}.png" for name in figures],
                              out.tensorboard_dir):
        out.progress(line)
    out.close()
    return run_directory.read_json(out.path / "summary.json")


def written_lines(path: Path, figures: Sequence[str],
                  tensorboard_dir: Path | None = None) -> list[str]:
    """The closing lines of a run: what was written where, and how to look at it
    (TensorBoard in `tensorboard_dir`, default ``path/tensorboard``).

    Example:
        >>> for line in written_lines(Path("runs/x"), ["curves.png"]):
        ...     print(line)
        wrote runs/x: summary.json (every number), results.npz (arrays), figures/curves.png
        view the measurements live or afterwards: tensorboard --logdir runs/x/tensorboard
    """
    listed = ", ".join(f"figures/{name}" for name in figures)
    return [f"wrote {path}: summary.json (every number), results.npz (arrays)"
            + (f", {listed}" if listed else ""),
            "view the measurements live or afterwards: tensorboard --logdir "
            + shlex.quote(str(path / "tensorboard" if tensorboard_dir is None
                              else tensorboard_dir))]
