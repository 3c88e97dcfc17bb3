"""Stiffness results as TensorBoard summaries, written outside `model.fit`.

Each function takes a `tf.summary` writer (`tf.summary.create_file_writer(logdir)`), writes
under `with writer.as_default(), tf.summary.record_if(True):` and flushes. The explicit
`record_if(True)` matters: Keras' TensorBoard callback with `update_freq` other than "epoch"
installs a recording condition that silently drops summaries written from a custom callback
between its own batch-level writes; stiffness is measured rarely and must never be dropped.

Scalars are stored by `tf.summary.scalar` as float32. Figures go through PNG (Agg, no pyplot)
into `tf.summary.image`. Hyperparameters use TensorBoard's HParams plugin so that a
learning-rate sweep can be compared in its HParams tab: one run directory per trial, each with
`write_hparams`, and (optionally) one `write_hparams_config` in the sweep's root directory.

Example:
    >>> import tempfile, tensorflow as tf
    >>> from tfstiffness import tensorboard
    >>> writer = tf.summary.create_file_writer(tempfile.mkdtemp())
    >>> tensorboard.write_scalars(writer, {"within": 0.42, "xi": float("nan")}, step=3)
    ['stiffness/within']
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.hparams import api as hp

from tfstiffness.outputs import plots

__all__ = [
    "event_file_name",
    "figure_to_png",
    "step_events",
    "write_class_matrix_image",
    "write_figure",
    "write_histogram",
    "write_hparams",
    "write_hparams_config",
    "write_png",
    "write_scalars",
]

# Summary images are viewed in a browser panel: a lower resolution than saved figures.
SUMMARY_DPI = 100
# TensorBoard's default number of histogram buckets.
_HISTOGRAM_BUCKETS = 30

HParamValue = bool | int | float | str


def _is_finite_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def figure_to_png(fig: Figure, dpi: int = SUMMARY_DPI) -> bytes:
    """Renders a matplotlib figure to PNG bytes with the Agg renderer (no pyplot).

    Args:
        fig: The figure.
        dpi: Dots per inch; the image is `fig.get_size_inches() * dpi` pixels.

    Returns:
        The PNG file contents.

    Example:
        >>> import numpy as np
        >>> figure_to_png(plots.class_matrix(np.eye(2)))[:4]
        b'\\x89PNG'
    """
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # A figure from pyplot or another backend: render with Agg.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_scalars(
    writer: tf.summary.SummaryWriter,
    values: Mapping[str, Any],
    step: int,
    prefix: str = "stiffness",
) -> list[str]:
    """Writes each value as a scalar with tag `prefix/name`.

    None, NaN and infinite values are skipped, not written: xi is None/NaN when the stiffness
    curve never crossed zero, and a NaN point would break TensorBoard's line and smoothing.
    Skipped names are simply absent at that step.

    Args:
        writer: The summary writer.
        values: Name -> number (Python, numpy scalar or 0-d array) or None.
        step: Global step (e.g. epoch or optimizer iteration).
        prefix: Tag prefix; "" for bare names.

    Returns:
        The tags written, in order.

    Example:
        >>> import tempfile, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_scalars(w, {"within": 0.5, "between": 0.1, "xi": None}, step=0)
        ['stiffness/within', 'stiffness/between']
    """
    written = []
    with writer.as_default(), tf.summary.record_if(True):
        for name, value in values.items():
            if value is None or not _is_finite_number(value):
                continue
            tag = f"{prefix}/{name}" if prefix else str(name)
            tf.summary.scalar(tag, float(value), step=step)
            written.append(tag)
    writer.flush()
    return written


def write_figure(
    writer: tf.summary.SummaryWriter, fig: Figure, tag: str, step: int, dpi: int = SUMMARY_DPI
) -> None:
    """Writes a matplotlib figure as an image summary (figure -> PNG -> uint8 [1, H, W, C]).

    Args:
        writer: The summary writer.
        fig: The figure.
        tag: Image tag.
        step: Global step.
        dpi: Dots per inch of the rendered image.

    Example:
        >>> import tempfile, numpy as np, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_figure(w, plots.superclass_matrix(np.eye(3)), "stiffness/super", step=1)
    """
    write_png(writer, figure_to_png(fig, dpi=dpi), tag, step)


def write_png(writer: tf.summary.SummaryWriter, png: bytes, tag: str, step: int) -> None:
    """Writes PNG file contents (e.g. a saved figure, not rendered again) as an image summary.

    Example:
        >>> import tempfile, numpy as np, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_png(w, figure_to_png(plots.class_matrix(np.eye(2))), "c", step=0)
    """
    image = tf.io.decode_png(png, channels=0)  # Keep RGBA or RGB.
    with writer.as_default(), tf.summary.record_if(True):
        tf.summary.image(tag, image[tf.newaxis], step=step, max_outputs=1)
    writer.flush()


def write_class_matrix_image(
    writer: tf.summary.SummaryWriter,
    C: Any,
    step: int,
    tag: str = "stiffness/class_matrix",
    fine_to_coarse: Any = None,
    class_names: Sequence[str] | None = None,
    coarse_names: Sequence[str] | None = None,
    title: str | None = None,
    vmax: float | None = None,
    dpi: int = SUMMARY_DPI,
) -> None:
    """Renders a class stiffness matrix with `plots.class_matrix` and writes it as an image.

    Args:
        writer: The summary writer.
        C: [K, K] class stiffness, NaN where a pair of classes has no examples.
        step: Global step.
        tag: Image tag.
        fine_to_coarse: Optional [K] super-class of each class (block ordering and labels).
        class_names: Optional class names.
        coarse_names: Optional super-class names.
        title: Figure title; default "Class stiffness (step N)".
        vmax: Fixed colour half-range (e.g. 1.0 so images at different steps compare).
        dpi: Dots per inch of the rendered image.

    Example:
        >>> import tempfile, numpy as np, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_class_matrix_image(w, np.eye(4) - 0.1, step=2, fine_to_coarse=[0, 0, 1, 1])
    """
    fig = plots.class_matrix(
        C,
        fine_to_coarse=fine_to_coarse,
        class_names=class_names,
        coarse_names=coarse_names,
        title=title if title is not None else f"Class stiffness (step {int(step)})",
        vmax=vmax,
    )
    write_figure(writer, fig, tag, step, dpi=dpi)


def write_histogram(
    writer: tf.summary.SummaryWriter,
    values: Any,
    tag: str,
    step: int,
    buckets: int | None = None,
    exclude_diagonal: bool = False,
) -> int:
    """Writes the distribution of values (e.g. all pairwise stiffness values) as a histogram.

    Non-finite values (NaN for empty class pairs, zero-gradient examples) are dropped first:
    one NaN would make every bucket edge NaN.

    Args:
        writer: The summary writer.
        values: Any array of numbers; flattened.
        tag: Histogram tag.
        step: Global step.
        buckets: Number of equal-width buckets over the values' range; TensorBoard's
            default (30) when None.
        exclude_diagonal: For a square matrix, leave out the diagonal (self-pairs, always 1
            for cosine stiffness) and histogram only the off-diagonal entries.

    Returns:
        The number of values written.

    Example:
        >>> import tempfile, numpy as np, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_histogram(w, np.eye(3), "stiffness/pairs", step=0, exclude_diagonal=True)
        6
    """
    array = np.asarray(values, dtype=np.float64)
    if exclude_diagonal:
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise ValueError(f"exclude_diagonal needs a square matrix, got shape {array.shape}")
        array = array[~np.eye(array.shape[0], dtype=bool)]
    array = array.reshape(-1)
    array = array[np.isfinite(array)]
    # Buckets counted here (numpy: 0.1 s for 9 million pairs; tf.summary.histogram took 5 s)
    # and written in the histogram plugin's own format: [buckets, (left, right, count)].
    count = _HISTOGRAM_BUCKETS if buckets is None else int(buckets)
    if array.size:
        counts, edges = np.histogram(array, bins=count)
        tensor = np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)
    else:
        tensor = np.zeros((0, 3))
    with writer.as_default(), tf.summary.record_if(True):
        tf.summary.write(tag, tf.constant(tensor, tf.float64), step=step,
                         metadata=histogram_metadata.create_summary_metadata(tag, None))
    writer.flush()
    return int(array.size)


def _hparam_value(value: Any) -> HParamValue:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (bool, int, float, str)):
        raise TypeError(f"hyperparameter values must be bool, int, float or str, got {value!r}")
    return value


def _metric(spec: str | hp.Metric) -> hp.Metric:
    return spec if isinstance(spec, hp.Metric) else hp.Metric(str(spec), display_name=str(spec))


def write_hparams(
    writer: tf.summary.SummaryWriter,
    hparams: Mapping[str, Any],
    metrics: Sequence[str | hp.Metric] | None = None,
    trial_id: str | None = None,
) -> None:
    """Records one run's hyperparameters for TensorBoard's HParams tab.

    Write into the run's own directory (e.g. `logs/lr=0.001`), next to its stiffness scalars.
    For a sweep, call this once per run; TensorBoard then lists every run with its values and
    offers each scalar tag as a metric. `metrics` additionally writes an experiment config
    naming which scalar tags are the metrics (as `write_hparams_config` does, with no domains,
    so it is consistent across the runs of a sweep); to give domains, use
    `write_hparams_config` once in the sweep's root directory instead.

    Args:
        writer: The run's summary writer.
        hparams: Name -> value (bool, int, float, str or numpy scalar), e.g.
            {"learning_rate": 1e-3, "optimizer": "adam"}.
        metrics: Optional scalar tags to show as metrics, e.g. ["stiffness/within"].
        trial_id: Optional trial name; default a hash of the values.

    Example:
        >>> import tempfile, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_hparams(w, {"learning_rate": 1e-3}, metrics=["stiffness/within"])
    """
    values = {str(name): _hparam_value(value) for name, value in hparams.items()}
    with writer.as_default(), tf.summary.record_if(True):
        if metrics:
            hp.hparams_config(
                hparams=[hp.HParam(name) for name in values],
                metrics=[_metric(m) for m in metrics],
            )
        hp.hparams(values, trial_id=trial_id)
    writer.flush()


def write_hparams_config(
    writer: tf.summary.SummaryWriter,
    hparams: Mapping[str, Sequence[Any] | hp.Domain | None],
    metrics: Sequence[str | hp.Metric],
) -> None:
    """Describes a sweep for TensorBoard's HParams tab: the hyperparameters and the metrics.

    Write this once, into the sweep's root log directory (the parent of the run directories
    that `write_hparams` writes into).

    Args:
        writer: The summary writer of the sweep's root directory.
        hparams: Name -> the values tried (a discrete domain), an `hp.Domain` (e.g.
            `hp.RealInterval(1e-4, 1e-1)`), or None (no domain).
        metrics: Scalar tags (e.g. "stiffness/within", "stiffness/xi") or `hp.Metric` objects
            (for a tag logged in a run subdirectory, e.g. `hp.Metric("epoch_loss", group="train")`).

    Example:
        >>> import tempfile, tensorflow as tf
        >>> w = tf.summary.create_file_writer(tempfile.mkdtemp())
        >>> write_hparams_config(w, {"learning_rate": [1e-3, 1e-2, 1e-1]},
        ...                      metrics=["stiffness/within", "stiffness/between"])
    """
    infos = []
    for name, domain in hparams.items():
        if domain is not None and not isinstance(domain, hp.Domain):
            domain = hp.Discrete([_hparam_value(v) for v in domain])
        infos.append(hp.HParam(str(name), domain))
    with writer.as_default(), tf.summary.record_if(True):
        hp.hparams_config(hparams=infos, metrics=[_metric(m) for m in metrics])
    writer.flush()


# --------------------------------------------------------------------------------------------
# One event file per step
# --------------------------------------------------------------------------------------------


def event_file_name(step: int) -> str:
    """The name of the event file holding `step` (`step_events`): names sort in step order.

    Example:
        >>> event_file_name(12)
        'events.out.tfevents.000000000012.step.v2'
    """
    if int(step) < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"events.out.tfevents.{int(step):012d}.step.v2"


@contextlib.contextmanager
def step_events(
    run_dir: str | os.PathLike, step: int, staging_dir: str | os.PathLike | None = None
) -> Iterator[tf.summary.SummaryWriter]:
    """A writer whose events become ONE file of `run_dir`, named by `step`, atomically on exit.

    This is how a resumable job writes TensorBoard data live without ever duplicating a
    point: each step's events are written to a fresh file in a staging directory and, once
    complete, renamed to `event_file_name(step)` in the run directory. Writing a step again
    (a resumed run redoing an epoch) replaces its file instead of adding to it. TensorBoard
    2.21 reads every event file of a run directory, both with its fast data server and with
    `--load_fast=false`, picks up new files while it runs, and shows a replaced file's points
    once (checked by serving such a directory and reading its scalars back over HTTP).
    On an exception nothing is renamed into place.

    Args:
        run_dir: The run's directory (TensorBoard names the run by its path below the log
            directory, e.g. ``stiffness`` or ``lr=0.001/train``).
        step: The step; names sort in step order.
        staging_dir: A directory on the same file system, outside the TensorBoard log
            directory, for the file while it is written (a hidden temporary directory is
            made in it and removed); default the parent of `run_dir`.

    Yields:
        A `tf.summary` writer.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp()) / "stiffness"
        >>> with step_events(run, 3) as writer:
        ...     _ = write_scalars(writer, {"within": 0.5}, step=3)
        >>> sorted(p.name for p in run.iterdir())
        ['events.out.tfevents.000000000003.step.v2']
    """
    run_dir = Path(run_dir)
    target = run_dir / event_file_name(step)
    staging_root = Path(staging_dir) if staging_dir is not None else run_dir.parent
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".events.", suffix=".tmp", dir=staging_root))
    try:
        writer = tf.summary.create_file_writer(str(staging))
        try:
            yield writer
        finally:
            writer.close()
        (written,) = [p for p in staging.iterdir() if "tfevents" in p.name]
        run_dir.mkdir(parents=True, exist_ok=True)
        os.replace(written, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
