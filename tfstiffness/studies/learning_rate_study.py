"""Stiffness and the critical length xi across learning rates (Fort et al. 2019, Sec. 4.3).

One Adam run per learning rate, all from the same initial weights and with the same batch
order (same `seed`). At the measured epochs (default: every epoch), on a fixed training probe:
every stiffness measure of `probes.ProbeSets` (within/between class, sign and cosine), the
within-class cosine stiffness against input distance and its critical length xi (status and
bound when the curve does not cross zero: no number is invented), and the loss on the whole
training split (one pass, inference mode).

Two comparisons: at equal epoch, and at equal training loss: every run's stiffness and xi are
interpolated (`at_loss_levels`) at common, geometrically spaced training-loss levels
that all runs pass through (`common_loss_levels`); xi only between two measurements
where it is defined.

Outputs: ``summary.json`` (per learning rate the per-epoch table, the final values and those
at the common loss levels; a "table" with one row per learning rate), ``results.npz``
(``learning_rates``, ``eval_epochs``, ``loss_levels``, ``curve_edges`` and per learning rate
index i ``lr<i>/train_loss``, ``lr<i>/within``, ``lr<i>/between``, ``lr<i>/xi`` (NaN where
undefined), ``lr<i>/xi_status``, ``lr<i>/xi_bound`` [E], ``lr<i>/curve_means``,
``lr<i>/curve_counts`` [E, B], ``lr<i>/at_loss/<within|between|xi>`` [L]),
``figures/by_epoch.png``, ``by_train_loss.png``, ``stiffness_vs_distance.png``, and
TensorBoard: one HParams session per learning rate, ``lr=<lr>``, with runs
``lr=<lr>/stiffness`` and ``lr=<lr>/train`` written live.

Example:
    >>> import tempfile
    >>> s = run_learning_rate_study(tempfile.mkdtemp(), learning_rates=(1e-3, 1e-2),
    ...                             epochs=2, probe_per_class=5,
    ...                             data_options={"num_per_class": 10}, verbose=False)
    >>> [row["learning_rate"] for row in s["results"]["table"]]
    [0.001, 0.01]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import experiment, training
from tfstiffness.studies import runner

__all__ = ["at_loss_levels", "common_loss_levels", "lr_key", "run_learning_rate_study"]

# Blobs in 20 dimensions that overlap (spread 1): learning rates 1e-4 ... 1e-2 then span a
# wide range of training losses within 10 epochs (the equal-loss comparison needs it).
DATA_DEFAULTS = {"gaussian_blobs": {"num_classes": 5, "dim": 20, "spread": 1.0,
                                    "num_per_class": 100}}
# The series compared across learning rates: name -> measurement key.
_SERIES = {"train_loss": "train_loss", "train_accuracy": "train_accuracy",
           "within": "train_train/cosine/within", "between": "train_train/cosine/between",
           "sign_within": "train_train/sign/within", "sign_between": "train_train/sign/between",
           "xi": "train_train/cosine/xi", "xi_status": "train_train/cosine/xi_status",
           "xi_bound": "train_train/cosine/xi_bound"}


def lr_key(learning_rate: float) -> str:
    """The key and TensorBoard run of a learning rate: ``lr_key(0.001) == "lr=0.001"``."""
    return f"lr={learning_rate:g}"


def run_learning_rate_study(
    output_dir: str,
    learning_rates: Sequence[float] = (1e-4, 1e-3, 1e-2),
    dataset: str = "gaussian_blobs",
    model: str = "fc",
    epochs: int = 10,
    batch_size: int = 32,
    probe_per_class: int = 50,
    eval_epochs: Sequence[int] | str | None = None,
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
    """The learning-rate study (see the module docstring).

    Default data: ``gaussian_blobs`` with 5 classes in 20 dimensions, spread 1, 100 examples
    per class and split.

    Args:
        output_dir: Output directory (an `experiment.OutputDir`).
        learning_rates: Adam learning rates, one run each (distinct, > 0).
        loss_levels: Number of common training-loss levels of the equal-loss comparison.
        Others: as `class_stiffness.run_class_stiffness` (`eval_epochs` None: every epoch).

    Returns:
        The summary (what ``summary.json`` holds).
    """
    runner.check_arguments(learning_rates=list(learning_rates), epochs=epochs,
                           batch_size=batch_size, probe_per_class=probe_per_class, seed=seed,
                           method=method, max_train_examples=max_train_examples,
                           max_val_examples=max_val_examples, bins=bins,
                           loss_levels=loss_levels)
    learning_rates = [float(lr) for lr in learning_rates]
    data_options = runner.merged_options(DATA_DEFAULTS, dataset, data_options)
    try:
        evals = training.parse_eval_epochs(eval_epochs, epochs)
    except ValueError as err:
        raise runner.StudyInputError(f"eval_epochs: {err}") from None
    config = {"study": "learning_rate_study", "learning_rates": learning_rates,
              "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size,
              "probe_per_class": probe_per_class, "eval_epochs": evals, "seed": seed,
              "data_dir": data_dir, "method": method, "max_train_examples": max_train_examples,
              "max_val_examples": max_val_examples, "data_options": data_options,
              "bins": bins, "loss_levels": loss_levels}
    experiment.check_output_dir(output_dir)
    prepared = runner.prepare(
        dataset, data_dir=data_dir, max_train_examples=max_train_examples,
        max_val_examples=max_val_examples, seed=seed, data_options=data_options,
        probe_per_class=probe_per_class, model=model, val_probe=False, method=method,
        bins=bins)
    train = prepared.train
    out = experiment.OutputDir(output_dir, config, name="learning_rate_study", verbose=verbose)
    out.progress(f"{dataset}: {len(train)} training examples, {prepared.num_classes} classes, "
                 f"probe of {len(prepared.train_idx)}; model {model}, Adam at learning rates "
                 f"{learning_rates}, batch {batch_size}; {epochs} epochs each, stiffness "
                 f"measured at epochs {evals}")
    labels = [f"lr{i}_" for i in range(len(learning_rates))]
    eta = runner.EtaModel({label: (epochs, evals) for label in labels}, final_figures=3)
    runs = []
    for label, lr in zip(labels, learning_rates):
        _write_hparams(out, lr, learning_rates)
        runs.append(runner.train_measured(
            out, prepared, epochs=epochs, learning_rate=lr, batch_size=batch_size, seed=seed,
            eval_epochs=evals, eval_sets={"train": (train.x, train.y)}, eta=eta,
            label=label, run_prefix=f"{lr_key(lr)}/"))

    results, arrays, history = _results(runs, learning_rates, evals, prepared, loss_levels)
    figures = _figures(history, runs, learning_rates, evals)
    headline = []
    for row in results["table"]:
        xi = row["final_xi"]
        xi_text = (f"xi {xi['xi']:.3f}" if xi["status"] == "crossed" else
                   f"xi {xi['status']} (bound {runner.format_number(xi['bound'])})")
        headline.append(
            f"{lr_key(row['learning_rate'])}: final train loss "
            f"{row['final_train_loss']:.4f}, within {row['final_within']:.3f}, between "
            f"{row['final_between']:.3f}, {xi_text}; at the common loss levels: mean within "
            f"{runner.format_number(row['mean_within_at_loss_levels'])}, mean xi "
            f"{runner.format_number(row['mean_xi_at_loss_levels'])}")
    run_info = {"resumed_after_epoch": {lr_key(lr): r.resumed_from
                                        for lr, r in zip(learning_rates, runs)},
                "train_seconds": {lr_key(lr): r.train_seconds.tolist()
                                  for lr, r in zip(learning_rates, runs)},
                "measure_seconds": {lr_key(lr): r.measure_seconds.tolist()
                                    for lr, r in zip(learning_rates, runs)}}
    return runner.finish(out, results, arrays, figures, run_info, headline=headline,
                         figure_step=evals[-1])


def _write_hparams(out: experiment.OutputDir, lr: float, learning_rates: list[float]) -> None:
    """The HParams session of one learning rate, with its metrics in its sub-runs."""
    from tensorboard.plugins.hparams import api as hp

    from tfstiffness import summary

    metrics = [hp.Metric("stiffness/train_train/cosine/within", group="stiffness",
                         display_name="within-class stiffness"),
               hp.Metric("stiffness/train_train/cosine/between", group="stiffness",
                         display_name="between-class stiffness"),
               hp.Metric("stiffness/train_train/cosine/xi", group="stiffness",
                         display_name="xi (where it crossed)"),
               hp.Metric("metrics/loss", group="train", display_name="training loss")]
    with out.step_events(lr_key(lr), 0) as writer:
        summary.write_hparams_config(writer, {"learning_rate": learning_rates}, metrics)
        summary.write_hparams(writer, {"learning_rate": lr})


def _results(runs, learning_rates, evals, prepared, loss_levels):
    """(summary.json's results, results.npz's arrays, per-rate series for the figures)."""
    levels = common_loss_levels([r.measurements["train_loss"] for r in runs],
                                       loss_levels)
    first = runs[0].measurements
    arrays: dict[str, Any] = {"learning_rates": np.asarray(learning_rates),
                              "eval_epochs": np.asarray(evals, np.int64),
                              "loss_levels": levels,
                              "train_probe_indices": prepared.train_idx,
                              "curve_edges": first["train_train/cosine/curve_edges"][-1]}
    per_lr: dict[str, Any] = {}
    history: dict[str, dict[str, np.ndarray]] = {}
    table = []
    for i, (lr, run) in enumerate(zip(learning_rates, runs)):
        m = run.measurements
        series = {name: m[key] for name, key in _SERIES.items()}
        arrays.update({f"lr{i}/{k}": v for k, v in series.items()})
        arrays[f"lr{i}/curve_means"] = m["train_train/cosine/curve_means"]
        arrays[f"lr{i}/curve_counts"] = m["train_train/cosine/curve_counts"]
        arrays[f"lr{i}/epoch_loss"] = run.epoch_loss
        at_loss = {k: at_loss_levels(m["train_loss"], series[k], levels)
                   for k in ("within", "between", "xi")}
        arrays.update({f"lr{i}/at_loss/{k}": v for k, v in at_loss.items()})
        history[lr_key(lr)] = {"epoch": np.asarray(evals, np.float64), **series}
        rows = [{"epoch": epoch,
                 **{k: float(series[k][e]) for k in ("train_loss", "train_accuracy", "within",
                                                      "between", "sign_within",
                                                      "sign_between")},
                 "xi": runner.xi_dict(series["xi"][e], series["xi_status"][e],
                                      series["xi_bound"][e])}
                for e, epoch in enumerate(evals)]
        final = rows[-1]
        per_lr[lr_key(lr)] = {
            "learning_rate": lr, "epochs": rows, "final": final,
            "at_loss_levels": {k: v.tolist() for k, v in at_loss.items()},
            "xi_crossed_epochs": [row["epoch"] for row in rows
                                  if row["xi"]["status"] == "crossed"]}
        table.append({"learning_rate": lr, "final_train_loss": final["train_loss"],
                      "final_within": final["within"], "final_between": final["between"],
                      "final_xi": final["xi"],
                      "mean_within_at_loss_levels": _nanmean_or_none(at_loss["within"]),
                      "mean_xi_at_loss_levels": _nanmean_or_none(at_loss["xi"])})
    results = {"num_classes": prepared.num_classes, "train_examples": len(prepared.train),
               "train_probe": len(prepared.train_idx),
               "gram_method": str(first["gram_method"][-1]), "loss_levels": levels.tolist(),
               "train_loss": "mean cross-entropy of one pass over the training split in "
                             "inference mode",
               "learning_rates": per_lr, "table": table}
    return results, arrays, history


def _nanmean_or_none(values: np.ndarray) -> float | None:
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else None


def _figures(history, runs, learning_rates, evals) -> dict[str, Any]:
    from tfstiffness import plots

    metrics = ("within", "between", "xi")
    figures = {
        "by_epoch": plots.training_curves(history, x="epoch", metrics=metrics,
                                          title="Learning rates compared at equal epoch"),
        "by_train_loss": plots.training_curves(
            history, x="train_loss", metrics=metrics,
            title="Learning rates compared at equal training loss"),
    }
    entries = [(*runner.curve_at(run.measurements, -1), lr_key(lr))
               for lr, run in zip(learning_rates, runs)]
    figures["stiffness_vs_distance"] = plots.stiffness_vs_distance(
        entries, title=f"Within-class cosine stiffness vs distance, epoch {evals[-1]}")
    return figures


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
