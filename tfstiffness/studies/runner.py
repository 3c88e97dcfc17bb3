"""The shared runner of the studies: checked inputs, data and probes, the measured and
resumable training loop with live TensorBoard, and the final files.

A study module (`class_stiffness`, `learning_rate_study`, ...) holds its own logic (what to
compute, which figures) and its parameters (a `studies.config.StudyConfig`), and uses this
module for everything every study does, in this order:

1. `StudyConfig.check` (`config.check_arguments`) and `run_directory.check_output_dir`: bad arguments and unusable output
   paths are refused (`StudyInputError`) before anything is loaded or written;
2. `prepare`: the data (a missing tfds set fails fast, `data.DatasetUnavailableError`), the
   fixed class-balanced probes (`probes.ProbeSets`, the one measuring path shared with
   `StiffnessCallback`) and a model factory; the model is built once here, as a check;
3. `run_directory.OutputDir`: the directory is locked, ``config.json`` written or compared;
4. `train_measured`: `training.train_resumable` (Adam, checkpointed each epoch) measuring the
   probes at the chosen epochs and writing TensorBoard live, one event file per step and run
   (``stiffness``, ``train``, ``validation``), so a resumed run never duplicates a point;
   one progress line per epoch with the time left (`progress.EtaModel`);
5. `finish`: ``results.npz``, figures, ``summary.json``, and the last lines naming what was
   written and the ``tensorboard --logdir`` command.

Beside it: `model_factory` (the models by name), `results` (summary.json's entries from the
measurements), `progress` (time left, number formatting, closing lines) and
`tfstiffness.training` (the two training loops).

Example:
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfstiffness import training
from tfstiffness.engine import structure
from tfstiffness.errors import StudyInputError
from tfstiffness.outputs import run_directory
from tfstiffness.probes import ProbeSets
from tfstiffness.studies.model_factory import build_model, model_inputs
from tfstiffness.studies.progress import EtaModel, format_number, written_lines

if TYPE_CHECKING:
    from tfstiffness.studies.config import TrainingConfig

__all__ = [
    "IMAGE_KINDS",
    "KINDS",
    "PAIRS",
    "Prepared",
    "bootstrap_text",
    "finish",
    "load_splits",
    "open_run",
    "prepare",
    "train_measured",
    "validation_split",
    "write_epoch_losses",
]

#: Probe pairings: rows from the first probe set, columns from the second.
PAIRS = ("train_train", "train_val", "val_val")
KINDS = ("sign", "cosine")
#: Images drawn into TensorBoard at each measurement (class matrix, stiffness vs distance):
#: cosine only, to keep a measurement's rendering cost to a few figures.
IMAGE_KINDS = ("cosine",)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


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
    config: TrainingConfig,
    *,
    data_options: Mapping[str, Any] | None,
    model_options: Mapping[str, Any] | None = None,
    val_probe: bool = True,
    representation: Callable[[Any, np.ndarray], np.ndarray] | None = None,
) -> Prepared:
    """Loads the data, draws the fixed class-balanced probes and checks the model builds.

    From `config`: the data set and its directory, split sizes, the probes' size, the model,
    the Gram method, the distance bins and the bootstrap resamples (0: no intervals), all
    seeded by ``config.seed``; `data_options` and `model_options` are the config's as
    resolved by the study (over its defaults). The model's inputs come from `model_inputs`.
    `val_probe` False draws no validation probe; `representation` is where distances are
    measured (`probes.ProbeSets`).

    Raises:
        StudyInputError: the data cannot be loaded or probed, or the model does not fit the
            data (e.g. a CNN on token ids), with the reason.
        data.DatasetUnavailableError: a tfds set is neither in `data_dir` nor downloadable.
    """
    import keras

    from tfstiffness import data

    dataset, seed, model = config.dataset, config.seed, config.model
    probe_per_class = config.probe_per_class
    try:
        train, val = load_splits(dataset, config.data_dir, config.max_train_examples,
                                 config.max_val_examples, seed, data_options)
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
        distance_bins=config.bins, method=config.method, representation=representation,
        bootstrap_samples=config.bootstrap_samples, bootstrap_seed=seed)
    return Prepared(train, val, num_classes, train_idx, val_idx, probes, make_model,
                    train_x=train_x, val_x=val_x)


# --------------------------------------------------------------------------------------------
# The measured training loop
# --------------------------------------------------------------------------------------------


def bootstrap_text(samples: int) -> str:
    """The start line's note on the bootstrap resamples, if any.

    Example:
        >>> bootstrap_text(200), bootstrap_text(0)
        ('; 200 bootstrap resamples', '')
    """
    return f"; {samples} bootstrap resamples" if samples else ""


def open_run(
    output_dir: str,
    config: TrainingConfig,
    *,
    verbose: bool,
    tensorboard_dir: str | os.PathLike | None = None,
    model_options: Mapping[str, Any] | None = None,
    val_probe: bool = True,
    representation: Callable[[Any, np.ndarray], np.ndarray] | None = None,
) -> tuple[Prepared, run_directory.OutputDir]:
    """Steps 1-3 of a training study: refuses an unusable `output_dir`, prepares data,
    probes and model (`prepare`, with the ``data_options`` of ``config.record()``), and only
    then opens the directory, ``config.record()`` its config.json.

    Returns:
        (what `prepare` returned, the locked output directory).
    """
    record = config.record()
    run_directory.check_output_dir(output_dir)
    prepared = prepare(config, data_options=record["data_options"],
                       model_options=model_options, val_probe=val_probe,
                       representation=representation)
    out = run_directory.OutputDir(output_dir, record, name=config.STUDY, verbose=verbose,
                                  tensorboard_dir=tensorboard_dir,
                                  inputs={"data": data_digest(prepared.train, prepared.val)})
    return prepared, out


def data_digest(*splits: Any) -> str:
    """One digest of the splits' inputs and labels (`data.LoadedData`; None skipped): what the
    stages record beyond the settings, so a stage of other data is refused."""
    from tfstiffness.outputs import stage_record

    arrays = []
    for split in splits:
        if split is None:
            continue
        x = split.x
        arrays += [x[k] for k in sorted(x)] if isinstance(x, Mapping) else [x]
        arrays.append(split.y)
    return stage_record.bytes_digest(*arrays)


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




def write_epoch_losses(out: run_directory.OutputDir, run: str, losses: Sequence[float]) -> None:
    """A stage's per-epoch mean batch losses as ``metrics/batch_loss`` of TensorBoard run
    `run`, steps 1..E, in one event file (written again, identically, if the stage is redone)."""
    from tfstiffness.outputs import tensorboard as summary

    with out.step_events(run, len(losses)) as writer:
        for epoch, loss in enumerate(losses, start=1):
            summary.write_scalars(writer, {"batch_loss": loss}, epoch, prefix="metrics")




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


