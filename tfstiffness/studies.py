"""The stiffness paper's studies (Fort et al. 2019): class stiffness through training,
CIFAR-100 super-classes, learning rates and a transformer text classifier.

Each study trains with Adam at a constant learning rate (`training.train_resumable`: resumable,
checkpointed after every epoch) and measures, at chosen epochs, stiffness on FIXED
class-balanced probe sets drawn from the training and validation splits:

- `run_class_stiffness`: class stiffness matrices for train-train, train-val and val-val pairs
  (sign and cosine), within/between-class stiffness, stiffness vs input distance and the
  critical length xi, loss and accuracy.
- `run_cifar100_superclass`: the same on a 100-class set with 20 super-classes (CIFAR-100 or the
  synthetic hierarchy), plus the class matrix ordered by super-class, the 20 x 20 super-class
  matrix and the super-class contrast through training.
- `run_learning_rate_study`: one run per learning rate; stiffness vs distance and xi through
  training; comparisons at equal epoch and at equal training loss; TensorBoard HParams.
- `run_text_transformer`: the small transformer classifier on text; class stiffness through
  training and stiffness vs distance in the pooled representation.

Every study writes into one `experiment.OutputDir`: ``config.json``, ``summary.json`` (config,
versions, every measured number), ``results.npz`` (matrices and curves), ``figures/*.png``,
``tensorboard/`` (rebuilt at the end from the checkpointed measurements, so a resumed run has
exactly one copy of every point) and ``stages/`` (the checkpoints).

Example:
    >>> import numpy as np
    >>> loss = np.array([2.0, 1.0, 0.5])
    >>> at_loss_levels(loss, np.array([0.9, 0.5, 0.1]), np.array([1.5, 0.25])).round(3)
    array([0.734,   nan])
"""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import experiment, training

__all__ = [
    "MODELS",
    "PAIRS",
    "XI_STATUSES",
    "at_loss_levels",
    "build_model",
    "common_loss_levels",
    "load_splits",
    "run_cifar100_superclass",
    "run_class_stiffness",
    "run_learning_rate_study",
    "run_text_transformer",
    "validation_split",
]

#: Model names accepted by `build_model`.
MODELS = ("fc", "cnn", "resnet20", "transformer")
#: Probe pairings: rows from the first probe set, columns from the second.
PAIRS = ("train_train", "train_val", "val_val")
KINDS = ("sign", "cosine")
#: `measures.CriticalLength.status` values, in the order of their integer codes in results.npz.
XI_STATUSES = ("crossed", "never_crossed", "nonpositive_from_start")

# Synthetic data of each study's default run: sizes per split, chosen so that a default run
# takes a few minutes on 2 CPU cores (timings in the README).
# Pixel noise 6 for the 10-class hierarchy: measured, the fully-connected net reaches 81 %
# validation accuracy in 10 epochs; with the generator's noise 1 it is at zero loss and 100 %
# after one epoch, with noise 16 it memorises (21 % validation accuracy).
_TEN_CLASS_HIERARCHY = {"hierarchical_images": {
    "num_superclasses": 5, "classes_per_superclass": 2, "num_per_class": 100, "noise": 6.0}}
# Noise 16 makes the hierarchy hard, like CIFAR-100 (validation accuracy ~15 % after 6
# epochs): measured with probes of 10 per class, the super-class contrast is positive while
# super-classes are being learned (epochs 3-6: +0.02 to +0.06); with noise 4 or 8 the classes
# separate within 1-2 epochs and classes of one super-class become anti-stiff (contrast about
# -0.1: their examples pull their shared features towards different classes).
_SUPERCLASS_HIERARCHY = {"hierarchical_images": {"num_per_class": 50, "noise": 16.0}}
# Blobs in 20 dimensions that overlap (spread 1): learning rates 1e-4 ... 1e-2 then span a
# wide range of training losses within 10 epochs (the equal-loss comparison needs it).
_LR_BLOBS = {"gaussian_blobs": {"num_classes": 5, "dim": 20, "spread": 1.0,
                                "num_per_class": 100},
             **_TEN_CLASS_HIERARCHY}


def _merged(defaults: Mapping[str, Mapping[str, Any]], dataset: str,
            options: Mapping[str, Any] | None) -> dict[str, Any]:
    """`options` over the study's defaults for `dataset` (synthetic generator options)."""
    return {**dict(defaults.get(dataset, {})), **dict(options or {})}


# --------------------------------------------------------------------------------------------
# Data and models
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

    "fc": fully connected 500-300-100; "cnn": three 3x3 convolutions (16, 32, 32) with 2x2
    max-pooling; "resnet20": ResNet20v1 without batch normalisation; "transformer": the small
    transformer classifier (needs `vocab_size`; `options` go to it, e.g. ``embed_dim``).

    Example:
        >>> build_model("cnn", (32, 32, 3), 10).count_params()
        19466
    """
    from tfstiffness import models

    if name == "fc":
        return models.fully_connected(input_shape, num_classes)
    if name == "cnn":
        return models.paper_cnn(input_shape, num_classes)
    if name == "resnet20":
        return models.resnet20v1(input_shape, num_classes)
    if name == "transformer":
        if vocab_size is None:
            raise ValueError("the transformer needs vocab_size")
        return models.transformer_classifier(vocab_size, int(input_shape[0]), num_classes,
                                             **options)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def _vocab_size(train, options: Mapping[str, Any]) -> int | None:
    if train.vocabulary is not None:
        return len(train.vocabulary)
    if train.x.dtype.kind in "iu":  # Synthetic text: ids below the generator's vocab_size.
        return int(options.get("vocab_size", 100))
    return None


# --------------------------------------------------------------------------------------------
# Interpolation at equal training loss
# --------------------------------------------------------------------------------------------


def at_loss_levels(loss: Any, values: Any, levels: Any) -> np.ndarray:
    """Values along a training trajectory, read at given training-loss levels.

    For each level: the first measured interval in which the loss comes down to the level
    (``loss[i-1] > level >= loss[i]``); the value is interpolated linearly in log(loss)
    between the interval's ends. NaN when the run never reaches the level, starts at or
    below it (unless exactly at it), or a value at either end is NaN (e.g. xi undefined):
    nothing is extrapolated.

    Args:
        loss: [E] training loss at the measured epochs (positive).
        values: [E] the quantity at the same epochs.
        levels: [L] loss levels.

    Returns:
        float64 [L].

    Example:
        >>> at_loss_levels([1.0, 0.1], [0.0, 1.0], [0.5, 2.0, 0.01]).round(3)
        array([0.301,   nan,   nan])
    """
    loss = np.asarray(loss, np.float64).reshape(-1)
    values = np.asarray(values, np.float64).reshape(-1)
    levels = np.asarray(levels, np.float64).reshape(-1)
    if loss.shape != values.shape:
        raise ValueError(f"{loss.size} losses for {values.size} values")
    result = np.full(levels.shape, np.nan)
    for k, level in enumerate(levels):
        if loss.size and loss[0] == level:
            result[k] = values[0]
            continue
        for i in range(1, loss.size):
            if loss[i - 1] > level >= loss[i] and loss[i] > 0:
                t = (math.log(loss[i - 1]) - math.log(level)) / (
                    math.log(loss[i - 1]) - math.log(loss[i]))
                result[k] = values[i - 1] + t * (values[i] - values[i - 1])
                break
    return result


def common_loss_levels(losses: Sequence[Any], num: int = 8) -> np.ndarray:
    """Geometrically spaced loss levels that every run passes through.

    From the lowest starting loss down to the highest final (minimum) loss of the runs; empty
    when some run never got below another's start.

    Example:
        >>> common_loss_levels([[2.0, 1.0, 0.5], [2.0, 0.2, 0.1]], num=3).round(3).tolist()
        [2.0, 1.0, 0.5]
    """
    arrays = [np.asarray(loss, np.float64).reshape(-1) for loss in losses]
    arrays = [a[np.isfinite(a)] for a in arrays]
    if not arrays or any(a.size == 0 for a in arrays):
        return np.array([])
    top = min(a[0] for a in arrays)
    bottom = max(a.min() for a in arrays)
    if not (top > bottom > 0) or num < 1:
        return np.array([])
    return np.geomspace(top, bottom, num)


# --------------------------------------------------------------------------------------------
# Measurement at one epoch
# --------------------------------------------------------------------------------------------


def _loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _xi_arrays(curve) -> dict[str, np.ndarray]:
    from tfstiffness import measures

    try:
        critical = measures.critical_length(curve)
    except ValueError:  # Every bin empty.
        return {"xi": np.float64(np.nan), "xi_status": np.int64(-1), "xi_bound": np.nan}
    return {
        "xi": np.float64(np.nan if critical.xi is None else critical.xi),
        "xi_status": np.int64(XI_STATUSES.index(critical.status)),
        "xi_bound": np.float64(np.nan if critical.bound is None else critical.bound),
    }


class _Measurer:
    """Measures stiffness of the fixed probes, loss and accuracy; one dict of arrays per call."""

    def __init__(self, *, probes, pairs, num_classes, fine_to_coarse, method, bins,
                 distance_space, eval_sets):
        self.probes = probes  # name -> (x, y)
        self.pairs = pairs
        self.num_classes = num_classes
        self.fine_to_coarse = fine_to_coarse
        self.method = method
        self.bins = bins
        self.distance_space = distance_space
        self.eval_sets = eval_sets  # name -> (x, y)
        self.gram_method = None

    def __call__(self, model, epoch: int) -> dict[str, np.ndarray]:
        from tfstiffness import gram as gram_lib
        from tfstiffness import measures

        result: dict[str, np.ndarray] = {}
        for pair in self.pairs:
            first, second = pair.split("_")
            xa, ya = self.probes[first]
            cross = first != second
            xb, yb = self.probes[second] if cross else (None, None)
            gram = gram_lib.gradient_gram(model, xa, ya, loss=_loss(), x2=xb, y2=yb,
                                          method=self.method, verbose=False)
            self.gram_method = gram.method
            result[f"{pair}/zero_gradients"] = np.int64(gram.num_zero_gradient)
            for kind in KINDS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # Zero gradients: counted.
                    S = measures.stiffness_matrix(gram, kind=kind)
                C = measures.class_stiffness(S, ya, yb if cross else None,
                                             num_classes=self.num_classes)
                within, between = measures.within_between(C)
                key = f"{pair}/{kind}"
                result[f"{key}/class_matrix"] = C
                result[f"{key}/within"] = np.float64(within)
                result[f"{key}/between"] = np.float64(between)
                if self.fine_to_coarse is not None:
                    result[f"{key}/superclass_contrast"] = np.float64(
                        measures.superclass_contrast(C, self.fine_to_coarse))
                if pair == "train_train" and kind == "cosine":
                    result.update(self._curve(model, S, xa, ya))
        for name, (x, y) in self.eval_sets.items():
            loss, accuracy = training.evaluate(model, x, y)
            result[f"{name}_loss"] = np.float64(loss)
            result[f"{name}_accuracy"] = np.float64(accuracy)
        return result

    def _curve(self, model, S, x, y) -> dict[str, np.ndarray]:
        """Within-class cosine stiffness vs distance (input or pooled representation), xi."""
        import keras

        from tfstiffness import measures

        if self.distance_space == "pooled":
            encoder = keras.Model(model.input, model.get_layer("pooled").output)
            x = np.asarray(encoder(x, training=False))
        if np.bincount(y).max() < 2:  # One example per class: no within-class pair.
            empty = np.full(self.bins, np.nan)
            return {"curve/edges": np.full(self.bins + 1, np.nan), "curve/means": empty,
                    "curve/counts": np.zeros(self.bins, np.int64), "curve/xi": np.nan,
                    "curve/xi_status": np.int64(-1), "curve/xi_bound": np.nan}
        curve = measures.stiffness_vs_distance(S, x=x, labels=y, pairs="within",
                                               bins=self.bins)
        return {"curve/edges": curve.edges, "curve/means": curve.means,
                "curve/counts": curve.counts.astype(np.int64),
                **{f"curve/{k}": v for k, v in _xi_arrays(curve).items()}}


def _xi_dict(xi: float, status: int, bound: float) -> dict[str, Any]:
    if status < 0:
        return {"xi": None, "status": "no_pairs", "bound": None}
    return {"xi": None if np.isnan(xi) else float(xi), "status": XI_STATUSES[int(status)],
            "bound": None if np.isnan(bound) else float(bound)}


# --------------------------------------------------------------------------------------------
# The class-stiffness study and its variants
# --------------------------------------------------------------------------------------------


def _prepare(dataset, data_dir, max_train_examples, max_val_examples, seed, options,
             probe_per_class, model_name, model_options):
    """Loads the data, draws the probes and returns what a study needs."""
    train, val = load_splits(dataset, data_dir, max_train_examples, max_val_examples, seed,
                             options)
    num_classes = int(train.num_classes)
    from tfstiffness import data

    # Probes: fixed, class-balanced, from the seed. Labels are 0..K-1 for every set here.
    train_idx = data.balanced_subset(train.x, train.y, probe_per_class, seed)
    val_idx = data.balanced_subset(val.x, val.y, probe_per_class, seed + 1)
    probes = {"train": (train.x[train_idx], train.y[train_idx]),
              "val": (val.x[val_idx], val.y[val_idx])}
    vocab = _vocab_size(train, options or {})

    def make():
        return build_model(model_name, train.x.shape[1:], num_classes, vocab_size=vocab,
                           **(model_options or {}))

    return train, val, num_classes, train_idx, val_idx, probes, make


def _class_study(
    study: str,
    output_dir: str,
    *,
    dataset: str,
    model: str,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    probe_per_class: int,
    eval_epochs: Sequence[int] | str | None,
    seed: int,
    data_dir: str | None,
    method: str,
    max_train_examples: int | None,
    max_val_examples: int | None,
    options: Mapping[str, Any] | None,
    model_options: Mapping[str, Any] | None,
    bins: int,
    distance_space: str,
    verbose: bool,
) -> dict[str, Any]:
    evals = training.parse_eval_epochs(eval_epochs, epochs)
    config = {"study": study, "dataset": dataset, "model": model, "epochs": epochs,
              "learning_rate": learning_rate, "batch_size": batch_size,
              "probe_per_class": probe_per_class, "eval_epochs": evals, "seed": seed,
              "data_dir": data_dir, "method": method, "max_train_examples": max_train_examples,
              "max_val_examples": max_val_examples, "data_options": dict(options or {}),
              "model_options": dict(model_options or {}), "bins": bins,
              "distance_space": distance_space}
    out = experiment.OutputDir(output_dir, config, name=study, verbose=verbose)
    train, val, K, train_idx, val_idx, probes, make = _prepare(
        dataset, data_dir, max_train_examples, max_val_examples, seed, options,
        probe_per_class, model, model_options)
    f2c = train.fine_to_coarse
    out.progress(f"{dataset}: {len(train)} training and {len(val)} validation examples, "
                 f"{K} classes; probes of {len(train_idx)} + {len(val_idx)}; model {model}; "
                 f"{epochs} epochs, measured at {evals}; output {out.path}")
    measurer = _Measurer(probes=probes, pairs=PAIRS, num_classes=K, fine_to_coarse=f2c,
                         method=method, bins=bins, distance_space=distance_space,
                         eval_sets={"train": (train.x, train.y), "val": (val.x, val.y)})
    run = training.train_resumable(
        out, make, train.x, train.y, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, eval_epochs=evals, measure=measurer)
    m = run.measurements

    arrays: dict[str, Any] = {
        "eval_epochs": run.eval_epochs, "epoch_loss": run.epoch_loss,
        "train_probe_indices": train_idx, "val_probe_indices": val_idx,
        "train_probe_labels": probes["train"][1], "val_probe_labels": probes["val"][1],
        **{key: value for key, value in m.items()},
    }
    per_epoch = []
    for e, epoch in enumerate(run.eval_epochs.tolist()):
        entry: dict[str, Any] = {"epoch": epoch}
        for name in ("train", "val"):
            entry[f"{name}_loss"] = float(m[f"{name}_loss"][e])
            entry[f"{name}_accuracy"] = float(m[f"{name}_accuracy"][e])
        entry["stiffness"] = {
            pair: {kind: {stat: float(m[f"{pair}/{kind}/{stat}"][e])
                          for stat in ("within", "between", "superclass_contrast")
                          if f"{pair}/{kind}/{stat}" in m}
                   for kind in KINDS} for pair in PAIRS}
        entry["zero_gradients"] = {pair: int(m[f"{pair}/zero_gradients"][e]) for pair in PAIRS}
        entry["xi"] = _xi_dict(m["curve/xi"][e], m["curve/xi_status"][e], m["curve/xi_bound"][e])
        per_epoch.append(entry)
    results: dict[str, Any] = {
        "num_classes": K, "train_examples": len(train), "val_examples": len(val),
        "train_probe": len(train_idx), "val_probe": len(val_idx),
        "parameters": int(run.model.count_params()),
        "gram_method": measurer.gram_method,
        "distance_space": distance_space,
        "epochs": per_epoch,
        "final": per_epoch[-1],
    }

    from tfstiffness import measures

    if f2c is not None:
        arrays["fine_to_coarse"] = f2c
        arrays["superclass_order"] = measures.superclass_order(f2c)
        for pair in PAIRS:
            for kind in KINDS:
                arrays[f"{pair}/{kind}/superclass_matrix"] = np.stack(
                    [measures.superclass_matrix(C, f2c)
                     for C in m[f"{pair}/{kind}/class_matrix"]])
        final = per_epoch[-1]["stiffness"]
        results["superclass_contrast"] = {pair: {kind: final[pair][kind]["superclass_contrast"]
                                                 for kind in KINDS} for pair in PAIRS}
        results["num_superclasses"] = int(f2c.max()) + 1
    out.write_results(**arrays)

    figures = _class_figures(out, study, run, m, arrays, train, f2c, distance_space)
    _class_tensorboard(out, run, m, train, f2c, figures)
    run_info = {"elapsed_s": out.elapsed, "resumed_after_epoch": run.resumed_from,
                "epoch_seconds": run.epoch_seconds.tolist(), "figures": sorted(figures)}
    out.write_summary(results, run=run_info)
    fin = per_epoch[-1]
    line = (f"epoch {fin['epoch']}: train accuracy {fin['train_accuracy']:.3f}, val accuracy "
            f"{fin['val_accuracy']:.3f}; train-train cosine within "
            f"{fin['stiffness']['train_train']['cosine']['within']:.3f}, between "
            f"{fin['stiffness']['train_train']['cosine']['between']:.3f}")
    if f2c is not None:
        line += (f"; super-class contrast (train-train cosine) "
                 f"{results['superclass_contrast']['train_train']['cosine']:+.4f}")
    out.progress(line)
    out.progress(f"wrote {out.path / 'summary.json'}")
    return experiment.read_json(out.path / "summary.json")


def _class_figures(out, study, run, m, arrays, train, f2c, distance_space) -> dict[str, Any]:
    """Saves the study's figures; returns name -> figure (also sent to TensorBoard)."""
    from tfstiffness import measures, plots

    figures: dict[str, Any] = {}
    last = len(run.eval_epochs) - 1
    epoch = int(run.eval_epochs[last])
    figures["curves"] = _curves_figure(run.eval_epochs, m, f2c is not None,
                                       title=f"{study}: {train.name}")
    C = m["train_train/cosine/class_matrix"][last]
    figures["class_matrix"] = plots.class_matrix(
        C, fine_to_coarse=f2c, class_names=train.class_names, coarse_names=train.coarse_names,
        title=f"Class stiffness, train-train cosine, epoch {epoch}", vmax=None)
    entries = [(*_curve_at(m, e), f"epoch {int(run.eval_epochs[e])}") for e in (0, last)
               if np.isfinite(m["curve/edges"][e]).all()]
    if entries:  # None when the probe has no within-class pair.
        space = ("train probe, pooled representation" if distance_space == "pooled"
                 else "train probe, input space")
        figures["stiffness_vs_distance"] = plots.stiffness_vs_distance(
            entries, title=f"Within-class cosine stiffness vs distance ({space})")
    if f2c is not None:
        C20 = measures.superclass_matrix(C, f2c)
        figures["superclass_matrix"] = plots.superclass_matrix(
            C20, coarse_names=train.coarse_names,
            title=f"Super-class stiffness, train-train cosine, epoch {epoch}")
    for name, fig in figures.items():
        out.save_figure(fig, f"{name}.png")
    return figures


def _curve_at(m, e):
    from types import SimpleNamespace

    curve = SimpleNamespace(edges=m["curve/edges"][e], means=m["curve/means"][e],
                            counts=m["curve/counts"][e], pairs="within",
                            centres=0.5 * (m["curve/edges"][e][1:] + m["curve/edges"][e][:-1]))
    status = int(m["curve/xi_status"][e])
    critical = None if status < 0 else SimpleNamespace(**_xi_dict(
        m["curve/xi"][e], status, m["curve/xi_bound"][e]))
    return curve, critical


def _curves_figure(epochs, m, superclasses: bool, title: str):
    """Within/between stiffness per pairing, loss/accuracy and (optionally) the contrast."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 4 + int(superclasses)
    fig = Figure(figsize=(4.0 * panels, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, sharex=True)
    styles = {"train_train": "-", "train_val": "--", "val_val": ":"}
    for ax, kind in zip(axes[:2], KINDS):
        for pair in PAIRS:
            for stat, colour in (("within", "C0"), ("between", "C3")):
                ax.plot(epochs, m[f"{pair}/{kind}/{stat}"], styles[pair], color=colour,
                        marker="o", markersize=3, label=f"{stat}, {pair.replace('_', '-')}")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"{kind.capitalize()} stiffness")
        ax.set_ylabel("class stiffness")
        ax.legend(fontsize=7)
    axes[2].plot(epochs, m["train_loss"], "o-", markersize=3, label="train")
    axes[2].plot(epochs, m["val_loss"], "o--", markersize=3, label="validation")
    axes[2].set_title("Loss")
    axes[2].legend(fontsize=8)
    axes[3].plot(epochs, m["train_accuracy"], "o-", markersize=3, label="train")
    axes[3].plot(epochs, m["val_accuracy"], "o--", markersize=3, label="validation")
    axes[3].set_title("Accuracy")
    axes[3].legend(fontsize=8)
    if superclasses:
        ax = axes[4]
        for pair in PAIRS:
            for kind, colour in zip(KINDS, ("C2", "C4")):
                ax.plot(epochs, m[f"{pair}/{kind}/superclass_contrast"], styles[pair],
                        color=colour, marker="o", markersize=3,
                        label=f"{kind}, {pair.replace('_', '-')}")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title("Super-class contrast\n(same super-class minus other)", fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def _fresh_tensorboard(out: experiment.OutputDir) -> None:
    # Rebuilt from the checkpointed measurements at the end of every run, so a resumed or
    # repeated run leaves exactly one copy of each point.
    out.close()
    shutil.rmtree(out.path / "tensorboard", ignore_errors=True)


def _class_tensorboard(out, run, m, train, f2c, figures) -> None:
    from tfstiffness import summary

    _fresh_tensorboard(out)
    writer = out.tensorboard
    for e, epoch in enumerate(run.eval_epochs.tolist()):
        scalars = {}
        for pair in PAIRS:
            for kind in KINDS:
                for stat in ("within", "between", "superclass_contrast"):
                    key = f"{pair}/{kind}/{stat}"
                    if key in m:
                        scalars[key] = m[key][e]
        scalars["train_train/cosine/xi"] = m["curve/xi"][e]
        summary.write_scalars(writer, scalars, step=epoch, prefix="stiffness")
        summary.write_scalars(writer, {k: m[k][e] for k in ("train_loss", "val_loss",
                                                               "train_accuracy",
                                                               "val_accuracy")},
                              step=epoch, prefix="metrics")
    last = len(run.eval_epochs) - 1
    epoch = int(run.eval_epochs[last])
    for name, fig in figures.items():
        summary.write_figure(writer, fig, f"figures/{name}", step=epoch)
    out.close()


def run_class_stiffness(
    output_dir: str,
    dataset: str = "hierarchical_images",
    model: str = "fc",
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 50,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    verbose: bool = True,
) -> dict[str, Any]:
    """Class stiffness through training (the paper's MNIST/Fashion-MNIST/CIFAR studies).

    Trains `model` on `dataset`'s training split with Adam (constant `learning_rate`,
    mini-batches of `batch_size`) and, at `eval_epochs` (plus 0 and the last), measures on
    fixed class-balanced probes of `probe_per_class` training and validation examples per
    class: the class stiffness matrix of train-train, train-val and val-val pairs for sign and
    cosine stiffness, within- and between-class stiffness (and the super-class contrast when
    the data set has super-classes), the within-class stiffness vs input distance of the
    training probe and its critical length xi, and loss and accuracy on the whole training and
    validation splits. Resumable after every epoch (`training.train_resumable`).

    Default data: ``hierarchical_images`` with 10 classes (5 super-classes of 2), 100
    examples per class and split, 32x32x3 images, pixel noise 6 (`data_options` overrides
    the synthetic generator's options; for tfds sets it is usually empty).

    Writes into `output_dir`: ``summary.json`` (results: data sizes, parameter count, per
    measured epoch loss/accuracy, stiffness[pair][kind][within|between|superclass_contrast],
    zero-gradient counts and xi {xi, status, bound}; "final" = the last epoch),
    ``results.npz`` (``eval_epochs``, ``epoch_loss``, probe indices and labels,
    ``<pair>/<kind>/class_matrix`` [E, K, K], ``.../within`` [E], ``.../between`` [E],
    ``curve/edges|means|counts|xi|xi_status|xi_bound``, ``train_loss`` ... [E]; with
    super-classes also ``fine_to_coarse``, ``superclass_order`` and
    ``<pair>/<kind>/superclass_matrix`` [E, S, S]), ``figures/curves.png``,
    ``figures/class_matrix.png``, ``figures/stiffness_vs_distance.png`` (and
    ``figures/superclass_matrix.png``) and TensorBoard scalars and images.

    Args:
        output_dir: Output directory (an `experiment.OutputDir`).
        dataset: A `tfstiffness.data` name (mnist, fashion_mnist, cifar10, cifar100, or a
            synthetic image set).
        model: "fc", "cnn" or "resnet20".
        epochs: Training epochs.
        learning_rate: Adam's learning rate.
        batch_size: Mini-batch size.
        probe_per_class: Probe examples per class, from each split.
        eval_epochs: Epochs to measure at (0 and `epochs` are always added); None: every
            epoch; "log": 1, 2, 4, 8, ... (`training.parse_eval_epochs`).
        seed: Seed of the data generator, probes, initial weights and batch order.
        data_dir: tfds data directory.
        method: `gradient_gram` method.
        max_train_examples: Train on the first N training examples only.
        max_val_examples: Use the first N validation examples only.
        data_options: Options of `data.load` (synthetic generator options).
        bins: Distance bins of the stiffness-vs-distance curve.
        verbose: Print progress lines.

    Returns:
        The summary (what ``summary.json`` holds).

    Example:
        >>> import tempfile
        >>> s = run_class_stiffness(tempfile.mkdtemp(), dataset="gaussian_blobs", epochs=1,
        ...                         probe_per_class=5, data_options={"num_per_class": 10},
        ...                         verbose=False)
        >>> sorted(s["results"]["final"]["stiffness"])
        ['train_train', 'train_val', 'val_val']
    """
    data_options = _merged(_TEN_CLASS_HIERARCHY, dataset, data_options)
    return _class_study(
        "class_stiffness", output_dir, dataset=dataset, model=model, epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, probe_per_class=probe_per_class,
        eval_epochs=eval_epochs, seed=seed, data_dir=data_dir, method=method,
        max_train_examples=max_train_examples, max_val_examples=max_val_examples,
        options=data_options, model_options=None, bins=bins, distance_space="input",
        verbose=verbose)


def run_cifar100_superclass(
    output_dir: str,
    dataset: str = "hierarchical_images",
    model: str = "cnn",
    epochs: int = 6,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 30,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    verbose: bool = True,
) -> dict[str, Any]:
    """CIFAR-100 super-classes: do classes of one super-class become stiffer to each other?

    `run_class_stiffness` on a data set with 100 classes in 20 super-classes (``cifar100``,
    whose fine-to-coarse table comes from `tfstiffness.cifar100_labels`, or the synthetic
    ``hierarchical_images``, which uses the same label convention), with the paper's probe of
    30 examples per class (3,000). On top of the class study's outputs: the 100 x 100 class
    matrix ordered by super-class (``figures/class_matrix.png``, thin lines between
    super-classes), the 20 x 20 super-class matrix (``figures/superclass_matrix.png`` and
    ``<pair>/<kind>/superclass_matrix`` in results.npz) and the super-class contrast (mean
    stiffness between distinct classes of one super-class minus that between classes of
    different super-classes) through training, with the final values in
    ``summary.json["results"]["superclass_contrast"][pair][kind]``.

    Default data: ``hierarchical_images`` (20 x 5 classes, 32x32x3) with 50 examples per class
    and split (5,000 training images) and pixel noise 16: a hard set, like CIFAR-100. On
    easier settings (noise 4 or 8) the fine classes separate within an epoch or two and the
    contrast turns negative (sibling classes pull shared features apart); see the README.

    Args: as `run_class_stiffness`; `dataset` must have super-classes.

    Returns:
        The summary (what ``summary.json`` holds).

    Example:
        >>> import tempfile
        >>> s = run_cifar100_superclass(
        ...     tempfile.mkdtemp(), epochs=1, probe_per_class=2, eval_epochs=(),
        ...     data_options={"num_per_class": 3, "image_shape": (8, 8, 1)}, verbose=False)
        >>> s["results"]["num_classes"], s["results"]["num_superclasses"]
        (100, 20)
    """
    if dataset not in ("cifar100", "hierarchical_images"):
        raise ValueError(f"dataset must have super-classes (cifar100 or hierarchical_images), "
                         f"got {dataset!r}")
    data_options = _merged(_SUPERCLASS_HIERARCHY, dataset, data_options)
    return _class_study(
        "cifar100_superclass", output_dir, dataset=dataset, model=model, epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, probe_per_class=probe_per_class,
        eval_epochs=eval_epochs, seed=seed, data_dir=data_dir, method=method,
        max_train_examples=max_train_examples, max_val_examples=max_val_examples,
        options=data_options, model_options=None, bins=bins, distance_space="input",
        verbose=verbose)


def run_text_transformer(
    output_dir: str,
    dataset: str = "synthetic_text",
    epochs: int = 6,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 100,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    verbose: bool = True,
) -> dict[str, Any]:
    """The transformer text classifier (the paper fine-tuned BERT; here a small transformer
    trained from scratch): class stiffness through training, stiffness vs distance measured
    in the pooled representation.

    `run_class_stiffness`'s measurements with `models.transformer_classifier` (its
    ``model_options``, default embed_dim 32, 2 heads, ff_dim 64, 2 blocks); the distances
    of the stiffness-vs-distance curve and xi are those between the training probe's pooled
    representations (layer ``"pooled"``: masked mean of the last block's outputs) at each
    measured epoch, since distances between token-id vectors mean little.

    Default data: ``synthetic_text`` (2 classes, 1,000 sequences per split, vocabulary 100,
    length 32). ``glue/sst2`` and ``imdb_reviews`` are downloaded by tfds; their vocabulary
    (`data_options` ``vocab_size``, default 20000) is adapted on the training split.

    Args: as `run_class_stiffness`, plus `model_options` for the transformer.

    Returns:
        The summary (what ``summary.json`` holds); files as `run_class_stiffness`'s.

    Example:
        >>> import tempfile
        >>> s = run_text_transformer(tempfile.mkdtemp(), epochs=1, probe_per_class=4,
        ...                          eval_epochs=(), data_options={"num_examples": 40},
        ...                          model_options={"embed_dim": 8, "num_heads": 2,
        ...                                         "ff_dim": 8, "num_blocks": 1},
        ...                          verbose=False)
        >>> s["results"]["distance_space"]
        'pooled'
    """
    model_options = {"embed_dim": 32, "num_heads": 2, "ff_dim": 64, "num_blocks": 2,
                     **dict(model_options or {})}
    data_options = dict(data_options or {})
    if dataset in ("glue/sst2", "imdb_reviews"):
        # Shorter sequences than data.load's default keep the attention cheap on a CPU.
        data_options.setdefault("sequence_length", 64)
    return _class_study(
        "text_transformer", output_dir, dataset=dataset, model="transformer", epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, probe_per_class=probe_per_class,
        eval_epochs=eval_epochs, seed=seed, data_dir=data_dir, method=method,
        max_train_examples=max_train_examples, max_val_examples=max_val_examples,
        options=data_options, model_options=model_options, bins=bins,
        distance_space="pooled", verbose=verbose)


# --------------------------------------------------------------------------------------------
# Learning-rate study
# --------------------------------------------------------------------------------------------


def _lr_key(learning_rate: float) -> str:
    return f"lr={learning_rate:g}"


def run_learning_rate_study(
    output_dir: str,
    learning_rates: Sequence[float] = (1e-4, 1e-3, 1e-2),
    dataset: str = "gaussian_blobs",
    model: str = "fc",
    epochs: int = 10,
    batch_size: int = 32,
    probe_per_class: int = 50,
    eval_epochs: Sequence[int] | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    loss_levels: int = 8,
    verbose: bool = True,
) -> dict[str, Any]:
    """Stiffness and the critical length xi for several learning rates (the paper's Sec. 4.3).

    One Adam run per learning rate, all from the same initial weights and with the same batch
    order (same `seed`). At `eval_epochs` (default: every epoch): on the fixed training probe,
    the within-class cosine stiffness vs input distance and its critical length xi (status
    and bound when the curve does not cross zero: no number is invented), within- and
    between-class stiffness (sign and cosine), and the loss on the whole training split.

    Default data: ``gaussian_blobs`` with 5 classes in 20 dimensions, spread 1, 100 examples
    per class and split.

    Two comparisons: at equal epoch, and at equal training loss: every run's stiffness and
    xi are interpolated (`at_loss_levels`) at `loss_levels` common, geometrically spaced
    training-loss levels that all runs pass through (`common_loss_levels`); xi only between
    two measurements where it is defined.

    Writes into `output_dir`: ``summary.json`` (results: per learning rate the per-epoch
    table, the final xi {xi, status, bound}, stiffness and loss, and the values at the common
    loss levels; a "table" with one row per learning rate), ``results.npz``
    (``learning_rates``, ``eval_epochs``, ``loss_levels``, and per learning rate index i
    ``lr<i>/train_loss`` [E], ``lr<i>/within`` [E], ``lr<i>/between`` [E], ``lr<i>/xi`` [E]
    (NaN where undefined), ``lr<i>/xi_status`` [E] (index into `XI_STATUSES`),
    ``lr<i>/xi_bound`` [E], ``lr<i>/curve_means`` [E, B], ``lr<i>/curve_counts``,
    ``curve_edges``, ``lr<i>/at_loss/<within|between|xi>`` [L]), ``figures/by_epoch.png``,
    ``figures/by_train_loss.png``, ``figures/stiffness_vs_distance.png`` (final epoch, one
    curve per learning rate) and ``tensorboard/lr=<lr>/`` (one HParams run per learning rate:
    scalars per epoch and the final metrics; the HParams config at the root).

    Args:
        output_dir: Output directory (an `experiment.OutputDir`).
        learning_rates: Adam learning rates, one run each.
        loss_levels: Number of common training-loss levels of the equal-loss comparison.
        Others: as `run_class_stiffness`.

    Returns:
        The summary (what ``summary.json`` holds).

    Example:
        >>> import tempfile
        >>> s = run_learning_rate_study(tempfile.mkdtemp(), learning_rates=(1e-3, 1e-2),
        ...                             dataset="gaussian_blobs", epochs=2, probe_per_class=5,
        ...                             data_options={"num_per_class": 10}, verbose=False)
        >>> [row["learning_rate"] for row in s["results"]["table"]]
        [0.001, 0.01]
    """
    learning_rates = [float(lr) for lr in learning_rates]
    if not learning_rates or len(set(learning_rates)) != len(learning_rates):
        raise ValueError(f"learning_rates must be distinct and non-empty, got {learning_rates}")
    data_options = _merged(_LR_BLOBS, dataset, data_options)
    evals = training.parse_eval_epochs(eval_epochs, epochs)
    config = {"study": "learning_rate_study", "learning_rates": learning_rates,
              "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size,
              "probe_per_class": probe_per_class, "eval_epochs": evals, "seed": seed,
              "data_dir": data_dir, "method": method, "max_train_examples": max_train_examples,
              "max_val_examples": max_val_examples, "data_options": data_options,
              "bins": bins, "loss_levels": loss_levels}
    out = experiment.OutputDir(output_dir, config, name="learning_rate_study", verbose=verbose)
    train, _, K, train_idx, _, probes, make = _prepare(
        dataset, data_dir, max_train_examples, max_val_examples, seed, data_options,
        probe_per_class, model, None)
    out.progress(f"{dataset}: {len(train)} training examples, {K} classes, probe of "
                 f"{len(train_idx)}; model {model}; learning rates {learning_rates}; "
                 f"{epochs} epochs each; output {out.path}")
    measurer = _Measurer(probes=probes, pairs=("train_train",), num_classes=K,
                         fine_to_coarse=None, method=method, bins=bins,
                         distance_space="input", eval_sets={"train": (train.x, train.y)})

    runs = []
    for i, lr in enumerate(learning_rates):
        runs.append(training.train_resumable(
            out, make, train.x, train.y, epochs=epochs, learning_rate=lr,
            batch_size=batch_size, seed=seed, eval_epochs=evals, measure=measurer,
            label=f"lr{i}_", progress_offset=i * epochs,
            progress_total=epochs * len(learning_rates)))

    levels = common_loss_levels([r.measurements["train_loss"] for r in runs], loss_levels)
    arrays: dict[str, Any] = {"learning_rates": np.asarray(learning_rates),
                              "eval_epochs": np.asarray(evals, np.int64),
                              "loss_levels": levels, "train_probe_indices": train_idx,
                              "curve_edges": runs[0].measurements["curve/edges"][-1]}
    per_lr: dict[str, Any] = {}
    history: dict[str, dict[str, np.ndarray]] = {}
    table = []
    for i, (lr, run) in enumerate(zip(learning_rates, runs)):
        m = run.measurements
        series = {
            "train_loss": m["train_loss"], "train_accuracy": m["train_accuracy"],
            "within": m["train_train/cosine/within"], "between": m["train_train/cosine/between"],
            "sign_within": m["train_train/sign/within"],
            "sign_between": m["train_train/sign/between"],
            "xi": m["curve/xi"], "xi_status": m["curve/xi_status"],
            "xi_bound": m["curve/xi_bound"],
        }
        arrays.update({f"lr{i}/{k}": v for k, v in series.items()})
        arrays[f"lr{i}/curve_means"] = m["curve/means"]
        arrays[f"lr{i}/curve_counts"] = m["curve/counts"]
        arrays[f"lr{i}/epoch_loss"] = run.epoch_loss
        at_loss = {k: at_loss_levels(m["train_loss"], series[k], levels)
                   for k in ("within", "between", "xi")}
        arrays.update({f"lr{i}/at_loss/{k}": v for k, v in at_loss.items()})
        history[_lr_key(lr)] = {"epoch": np.asarray(evals, np.float64), **series}
        epochs_table = [{
            "epoch": epoch, "train_loss": float(series["train_loss"][e]),
            "train_accuracy": float(series["train_accuracy"][e]),
            "within": float(series["within"][e]), "between": float(series["between"][e]),
            "sign_within": float(series["sign_within"][e]),
            "sign_between": float(series["sign_between"][e]),
            "xi": _xi_dict(series["xi"][e], series["xi_status"][e], series["xi_bound"][e]),
        } for e, epoch in enumerate(evals)]
        final = epochs_table[-1]
        per_lr[_lr_key(lr)] = {
            "learning_rate": lr, "epochs": epochs_table, "final": final,
            "at_loss_levels": {k: v.tolist() for k, v in at_loss.items()},
            "xi_crossed_epochs": [row["epoch"] for row in epochs_table
                                  if row["xi"]["status"] == "crossed"],
        }
        table.append({"learning_rate": lr, "final_train_loss": final["train_loss"],
                      "final_within": final["within"], "final_between": final["between"],
                      "final_xi": final["xi"],
                      "mean_within_at_loss_levels": _nanmean_or_none(at_loss["within"]),
                      "mean_xi_at_loss_levels": _nanmean_or_none(at_loss["xi"])})
    results = {"num_classes": K, "train_examples": len(train), "train_probe": len(train_idx),
               "gram_method": measurer.gram_method, "loss_levels": levels.tolist(),
               "learning_rates": per_lr, "table": table}
    out.write_results(**arrays)

    figures = _lr_figures(out, history, runs, learning_rates, arrays)
    _lr_tensorboard(out, learning_rates, history, table, figures)
    run_info = {"elapsed_s": out.elapsed,
                "resumed_after_epoch": {_lr_key(lr): r.resumed_from
                                        for lr, r in zip(learning_rates, runs)},
                "epoch_seconds": {_lr_key(lr): r.epoch_seconds.tolist()
                                  for lr, r in zip(learning_rates, runs)},
                "figures": sorted(figures)}
    out.write_summary(results, run=run_info)
    for row in table:
        xi = row["final_xi"]
        xi_text = (f"xi {xi['xi']:.3f}" if xi["status"] == "crossed" else
                   f"xi {xi['status']} (bound {xi['bound']})")
        out.progress(f"{_lr_key(row['learning_rate'])}: final train loss "
                     f"{row['final_train_loss']:.4f}, within {row['final_within']:.3f}, "
                     f"between {row['final_between']:.3f}, {xi_text}; at the common loss "
                     f"levels: mean within {row['mean_within_at_loss_levels']}, mean xi "
                     f"{row['mean_xi_at_loss_levels']}")
    out.progress(f"wrote {out.path / 'summary.json'}")
    return experiment.read_json(out.path / "summary.json")


def _nanmean_or_none(values: np.ndarray) -> float | None:
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else None


def _lr_figures(out, history, runs, learning_rates, arrays) -> dict[str, Any]:
    from types import SimpleNamespace

    from tfstiffness import plots

    metrics = ("within", "between", "xi")
    figures = {
        "by_epoch": plots.training_curves(history, x="epoch", metrics=metrics,
                                          title="Learning rates compared at equal epoch"),
        "by_train_loss": plots.training_curves(
            history, x="train_loss", metrics=metrics,
            title="Learning rates compared at equal training loss"),
    }
    entries = []
    for lr, run in zip(learning_rates, runs):
        m = run.measurements
        edges = m["curve/edges"][-1]
        curve = SimpleNamespace(edges=edges, centres=0.5 * (edges[1:] + edges[:-1]),
                                means=m["curve/means"][-1], counts=m["curve/counts"][-1],
                                pairs="within")
        status = int(m["curve/xi_status"][-1])
        critical = None if status < 0 else SimpleNamespace(**_xi_dict(
            m["curve/xi"][-1], status, m["curve/xi_bound"][-1]))
        entries.append((curve, critical, _lr_key(lr)))
    figures["stiffness_vs_distance"] = plots.stiffness_vs_distance(
        entries, title=f"Within-class cosine stiffness vs distance, epoch "
                       f"{int(arrays['eval_epochs'][-1])}")
    for name, fig in figures.items():
        out.save_figure(fig, f"{name}.png")
    return figures


def _lr_tensorboard(out, learning_rates, history, table, figures) -> None:
    import tensorflow as tf

    from tfstiffness import summary

    _fresh_tensorboard(out)
    metrics = ["stiffness/within", "stiffness/between", "stiffness/xi", "metrics/train_loss"]
    summary.write_hparams_config(out.tensorboard, {"learning_rate": learning_rates}, metrics)
    for name, fig in figures.items():
        summary.write_figure(out.tensorboard, fig, f"figures/{name}", step=0)
    out.close()
    for lr in learning_rates:
        h = history[_lr_key(lr)]
        writer = tf.summary.create_file_writer(str(out.path / "tensorboard" / _lr_key(lr)))
        summary.write_hparams(writer, {"learning_rate": lr})
        for e, epoch in enumerate(h["epoch"].astype(int).tolist()):
            summary.write_scalars(writer, {k: h[k][e] for k in ("within", "between", "xi")},
                                  step=epoch, prefix="stiffness")
            summary.write_scalars(writer, {"train_loss": h["train_loss"][e],
                                           "train_accuracy": h["train_accuracy"][e]},
                                  step=epoch, prefix="metrics")
        writer.close()
