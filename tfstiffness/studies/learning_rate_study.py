"""Stiffness and the critical length xi across learning rates (Fort et al. 2019, Sec. 4.3).

One Adam run per learning rate, all from the same initial weights and with the same batch
order (same `seed`). At the measured epochs (default: every epoch), on a fixed training probe:
every stiffness measure of `probes.ProbeSets` (within/between class, sign and cosine, the
alignment family), the within-class cosine stiffness against input distance and its critical
length xi by both estimators of `measures.critical_length`: the crossing (status and bound
when the curve does not cross zero: no number is invented) and the linear fit (slope, R^2,
and whether xi is extrapolated beyond the distances measured), bootstrap intervals over the
probe examples, and the loss on the whole training split (one pass, inference mode).

Two comparisons: at equal epoch, and at equal training loss: every run's stiffness and both
xi are interpolated (`at_loss_levels`) at common, geometrically spaced training-loss levels
that all runs pass through (`common_loss_levels`); xi only between two measurements where it
is defined, and a linear-fit xi read between two measurements counts as extrapolated when
either of them is.

Default: MNIST-1D (`data.load("mnist1d")`), the paper's fully-connected net, learning rates
1e-4, 1e-3 and 1e-2, 10 epochs measured at every epoch. With ``seeds`` the whole study runs
once per seed (`studies.seeds`).

Outputs: ``summary.json`` (per learning rate the per-epoch table, the final values and those
at the common loss levels; ``table``, one row per learning rate; ``xi_table``, xi by both
estimators for every learning rate at each measured epoch and at each common loss level),
``xi_table.md`` (that table, readable), ``results.npz`` (``learning_rates``, ``eval_epochs``,
``loss_levels``, ``curve_edges`` and per learning rate index i ``lr<i>/<series>`` [E] for
the series of `SERIES` with their bootstrap interval ends ``lr<i>/<series>_ci_low`` /
``_ci_high``, ``lr<i>/curve_means``, ``lr<i>/curve_counts`` [E, B],
``lr<i>/at_loss/<name>`` [L]), ``figures/by_epoch.png``, ``by_train_loss.png``,
``stiffness_vs_distance.png``, and TensorBoard: one HParams session per learning rate,
``lr=<lr>``, with runs ``lr=<lr>/stiffness`` and ``lr=<lr>/train`` written live.

Example:
    >>> import tempfile
    >>> s = run_learning_rate_study(tempfile.mkdtemp(), learning_rates=(1e-3, 1e-2),
    ...                             dataset="gaussian_blobs", epochs=2, probe_per_class=5,
    ...                             data_options={"num_per_class": 10},
    ...                             bootstrap_samples=20, verbose=False)
    >>> [row["learning_rate"] for row in s["results"]["table"]]
    [0.001, 0.01]
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from tfstiffness import training
from tfstiffness.outputs import run_directory
from tfstiffness.studies import config as config_lib
from tfstiffness.studies import progress, runner
from tfstiffness.studies import results as result_dicts
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.config import parameter

__all__ = ["SERIES", "LearningRateStudyConfig", "at_loss_levels", "common_loss_levels",
           "lr_key", "run_learning_rate_study"]

# --dataset gaussian_blobs: 5 blobs in 20 dimensions (spread 1), standardised. Measured with
# the fully-connected net, 10 epochs (seed 0): the training loss goes 1.60 -> 1.34 / 0.36 /
# 0.07 (epochs 1 / 5 / 10) at 1e-4, 0.075 / 0.001 / 0.000 at 1e-3 and 0.38 / 0.007 / 0.000
# at 1e-2, validation accuracy 96-98 %: the rates span the loss range the equal-loss
# comparison needs, but standardised the blobs barely overlap (an easy set).
#: The series compared across learning rates: name -> measurement key (train-train cosine).
SERIES = {"train_loss": "train_loss", "train_accuracy": "train_accuracy",
          "within": "train_train/cosine/within", "between": "train_train/cosine/between",
          "sign_within": "train_train/sign/within", "sign_between": "train_train/sign/between",
          "m_coherence": "train_train/alignment/m_coherence",
          "xi_crossing": "train_train/cosine/xi_crossing",
          "xi_crossing_status": "train_train/cosine/xi_crossing_status",
          "xi_crossing_bound": "train_train/cosine/xi_crossing_bound",
          "xi_linear_fit": "train_train/cosine/xi_linear_fit",
          "xi_linear_fit_status": "train_train/cosine/xi_linear_fit_status",
          "xi_linear_fit_slope": "train_train/cosine/xi_linear_fit_slope",
          "xi_linear_fit_intercept": "train_train/cosine/xi_linear_fit_intercept",
          "xi_linear_fit_r2": "train_train/cosine/xi_linear_fit_r2",
          "xi_linear_fit_extrapolated": "train_train/cosine/xi_linear_fit_extrapolated"}
# Series read at the common loss levels.
_AT_LOSS = ("within", "between", "xi_crossing", "xi_linear_fit")


def lr_key(learning_rate: float) -> str:
    """The key and TensorBoard run of a learning rate: ``lr_key(0.001) == "lr=0.001"``."""
    return f"lr={learning_rate:g}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LearningRateStudyConfig(config_lib.TrainingConfig):
    """The learning-rate study's parameters: those of `TrainingConfig` (no `learning_rate`;
    `eval_epochs` None, every epoch, by default) and the learning rates.

    Default data: MNIST-1D. ``gaussian_blobs`` (5 classes in 20 dimensions, spread 1, 100
    examples per class and split: `DATA_DEFAULTS`) is the synthetic alternative.

    `record` (config.json): every parameter but ``seeds``, ``eval_epochs`` as the measured
    epochs and ``data_options`` over `DATA_DEFAULTS`.

    Attributes:
        learning_rates: Adam learning rates, one run each (distinct, > 0).
        loss_levels: Number of common training-loss levels of the equal-loss comparison.
    """

    STUDY = "learning_rate_study"
    # --dataset gaussian_blobs: 5 blobs in 20 dimensions (spread 1), standardised. Measured
    # with the fully-connected net, 10 epochs (seed 0): the training loss goes 1.60 -> 1.34 /
    # 0.36 / 0.07 (epochs 1 / 5 / 10) at 1e-4, 0.075 / 0.001 / 0.000 at 1e-3 and 0.38 / 0.007
    # / 0.000 at 1e-2, validation accuracy 96-98 %: the rates span the loss range the
    # equal-loss comparison needs, but standardised the blobs barely overlap (an easy set).
    DATA_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {"gaussian_blobs": {
        "num_classes": 5, "dim": 20, "spread": 1.0, "num_per_class": 100}}

    learning_rates: Sequence[float] = parameter(
        (1e-4, 1e-3, 1e-2), "Adam's constant learning rates, one training run each.",
        flag="float_list")
    dataset: str = parameter("mnist1d", "mnist1d or gaussian_blobs (generated offline), or a "
                             "TensorFlow Datasets image set.", flag="enum",
                             choices=("mnist1d", "gaussian_blobs", "mnist", "fashion_mnist",
                                      "cifar10", "cifar100"))
    model: str = parameter("fc", flag="model", choices=("fc", "cnn", "resnet20"))
    epochs: int = parameter(10, "Training epochs.", flag="integer", lower_bound=1)
    probe_per_class: int = parameter(50, "Probe examples per class, from the training split.",
                                     flag="integer", lower_bound=1)
    eval_epochs: Sequence[int] | str | None = parameter(None, config_lib.EVAL_EPOCHS_HELP,
                                                        flag="eval_epochs")
    loss_levels: int = parameter(8, "Common training-loss levels of the equal-loss "
                                 "comparison.", flag="integer", lower_bound=1)

    def seed_kwargs(self) -> dict[str, Any]:
        return {**super().seed_kwargs(),
                "learning_rates": [float(lr) for lr in self.learning_rates]}

    def record(self) -> dict[str, Any]:
        return {**super().record(), "learning_rates": [float(lr) for lr in self.learning_rates],
                "eval_epochs": self.parsed_eval_epochs(),
                "data_options": self.merged_data_options()}


#: gaussian_blobs' default options (`LearningRateStudyConfig`).
DATA_DEFAULTS = LearningRateStudyConfig.DATA_DEFAULTS


def _run_once(output_dir: str, config: LearningRateStudyConfig, *, verbose: bool,
              tensorboard_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The study of one seed: one training run per learning rate, then the files."""
    c, learning_rates = config, [float(lr) for lr in config.learning_rates]
    evals = config.parsed_eval_epochs()
    prepared, out = runner.open_run(output_dir, c, verbose=verbose,
                                    tensorboard_dir=tensorboard_dir, val_probe=False)
    train = prepared.train
    out.progress(f"{c.dataset}: {len(train)} training examples, {prepared.num_classes} "
                 f"classes, probe of {len(prepared.train_idx)}; model {c.model}, Adam at "
                 f"learning rates {learning_rates}, batch {c.batch_size}; {c.epochs} epochs "
                 f"each, stiffness measured at epochs {evals}"
                 f"{runner.bootstrap_text(c.bootstrap_samples)}")
    labels = [f"lr{i}_" for i in range(len(learning_rates))]
    eta = progress.EtaModel({label: (c.epochs, evals) for label in labels}, final_figures=3)
    runs = []
    for label, lr in zip(labels, learning_rates):
        _write_hparams(out, lr, learning_rates)
        runs.append(runner.train_measured(
            out, prepared, epochs=c.epochs, learning_rate=lr, batch_size=c.batch_size,
            seed=c.seed, eval_epochs=evals, eval_sets={"train": (prepared.train_x, train.y)},
            eta=eta, label=label, run_prefix=f"{lr_key(lr)}/"))
    return _finish(out, runs, learning_rates, evals, prepared, c)


def _finish(out: run_directory.OutputDir, runs: Sequence[training.TrainingRun],
            learning_rates: list[float], evals: list[int], prepared: runner.Prepared,
            config: LearningRateStudyConfig) -> dict[str, Any]:
    """The study's files from its runs: xi_table.md, results, figures, summary.json."""
    results, arrays = _results(runs, learning_rates, evals, prepared, config.loss_levels,
                               config.bootstrap_samples, config.seed)
    (out.path / "xi_table.md").parent.mkdir(parents=True, exist_ok=True)
    with run_directory.atomic_write(out.path / "xi_table.md", "w") as file:
        file.write(xi_table_markdown(results["xi_table"]))
    figures = figures_of(arrays)
    headline = [_headline_row(row) for row in results["table"]]
    headline.append(f"xi per learning rate at each epoch and loss level: "
                    f"{out.path / 'xi_table.md'}")
    run_info = {"resumed_after_epoch": {lr_key(lr): r.resumed_from
                                        for lr, r in zip(learning_rates, runs)},
                "train_seconds": {lr_key(lr): r.train_seconds.tolist()
                                  for lr, r in zip(learning_rates, runs)},
                "measure_seconds": {lr_key(lr): r.measure_seconds.tolist()
                                    for lr, r in zip(learning_rates, runs)}}
    return runner.finish(out, results, arrays, figures, run_info, headline=headline,
                         figure_step=evals[-1])


def _xi_cell(crossing: Mapping[str, Any], fit: Mapping[str, Any],
             interval: Mapping[str, Any] | None = None) -> str:
    """``crossing / linear fit`` of one xi pair, e.g. ``> 1.25 / 2.3 (extrapolated)``, with
    the linear fit's interval when given."""
    if crossing["status"] == "crossed":
        first = f"{crossing['xi']:.3g}"
    elif crossing.get("bound") is not None:
        first = (">" if crossing["status"] == "never_crossed" else "<") + (
            f" {crossing['bound']:.3g}")
    else:
        first = "none"
    if fit["xi"] is None:
        second = {"no_decay": "no decay", "nonpositive_at_zero": "<= 0 at 0"}.get(
            fit["status"], "none")
    else:
        second = f"{fit['xi']:.3g}"
        if interval is not None:
            second += " [" + ", ".join(
                f"{end:.3g}" if isinstance(end, float) else str(end)
                for end in (interval["low"], interval["high"])) + "]"
        second += " (extrapolated)" if fit["extrapolated"] else ""
    return f"{first} / {second}"


def _headline_row(row: Mapping[str, Any]) -> str:
    return (f"{lr_key(row['learning_rate'])}: final train loss {row['final_train_loss']:.4f}, "
            f"within {progress.format_number(row['final_within'])}, between "
            f"{progress.format_number(row['final_between'])}, xi crossing / linear fit "
            f"{_xi_cell(row['final_xi_crossing'], row['final_xi_linear_fit'])}; at the common "
            f"loss levels: mean within {progress.format_number(row['mean_within_at_loss_levels'])}"
            f", mean xi linear fit "
            f"{progress.format_number(row['mean_xi_linear_fit_at_loss_levels'])}")


def xi_table_markdown(table: Mapping[str, Any]) -> str:
    """`results["xi_table"]` as two Markdown tables (at equal epoch, at equal training loss):
    one row per epoch or loss level, one column per learning rate, each cell ``crossing /
    linear fit`` with "(extrapolated)" where the fitted xi lies beyond the distances
    measured; crossing "> b" when the curve never crossed zero (xi beyond b)."""
    lines = ["# xi (train-train cosine, within-class) by learning rate", "",
             ("Each cell: xi by the crossing estimator / by the linear fit. '> b': the curve "
             "never crossed zero, xi lies beyond b, the largest distance binned. "
             "'(extrapolated)': the fitted line reaches zero outside the distances measured."),
             ""]
    for title, rows, key in (("At equal epoch", table["at_equal_epoch"], "epoch"),
                             ("At equal training loss", table["at_equal_loss"], "train_loss")):
        lines.append(f"## {title}")
        lines.append("")
        if not rows:
            lines += ["(no common training-loss levels: the runs' losses do not overlap)", ""]
            continue
        rates = [name for name in rows[0] if name != key]
        lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(rates) + " |")
        lines.append("|---" * (len(rates) + 1) + "|")
        for row in rows:
            label = f"{row[key]:.4g}" if key == "train_loss" else str(row[key])
            cells = [_xi_cell(row[r]["xi_crossing"], row[r]["xi_linear_fit"],
                              row[r].get("xi_linear_fit_interval"))
                     if row[r] is not None else "not reached" for r in rates]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _write_hparams(out: run_directory.OutputDir, lr: float, learning_rates: list[float]) -> None:
    """The HParams session of one learning rate, with its metrics in its sub-runs."""
    from tensorboard.plugins.hparams import api as hp

    from tfstiffness.outputs import tensorboard as summary

    metrics = [hp.Metric("stiffness/train_train/cosine/within", group="stiffness",
                         display_name="within-class stiffness"),
               hp.Metric("stiffness/train_train/cosine/between", group="stiffness",
                         display_name="between-class stiffness"),
               hp.Metric("stiffness/train_train/cosine/xi_crossing", group="stiffness",
                         display_name="xi, crossing (where it crossed)"),
               hp.Metric("stiffness/train_train/cosine/xi_linear_fit", group="stiffness",
                         display_name="xi, linear fit (may be extrapolated)"),
               hp.Metric("metrics/loss", group="train", display_name="training loss")]
    with out.step_events(lr_key(lr), 0) as writer:
        summary.write_hparams_config(writer, {"learning_rate": learning_rates}, metrics)
        summary.write_hparams(writer, {"learning_rate": lr})


def _xi_at(series: Mapping[str, np.ndarray], e: int) -> dict[str, Any]:
    """Both critical lengths of epoch index `e` of one learning rate's series."""
    return {"xi_crossing": result_dicts.xi_dict(series["xi_crossing"][e],
                                          series["xi_crossing_status"][e],
                                          series["xi_crossing_bound"][e]),
            "xi_linear_fit": result_dicts.linear_fit_dict(
                series["xi_linear_fit"][e], series["xi_linear_fit_status"][e],
                series["xi_linear_fit_slope"][e], series["xi_linear_fit_r2"][e],
                series["xi_linear_fit_extrapolated"][e], series["xi_linear_fit_intercept"][e])}


def _ci(series: Mapping[str, np.ndarray], name: str, e: int) -> dict[str, Any] | None:
    if f"{name}_ci_low" not in series:
        return None
    return {"low": result_dicts.interval_end(series[f"{name}_ci_low"][e]),
            "high": result_dicts.interval_end(series[f"{name}_ci_high"][e])}


def _results(runs, learning_rates, evals, prepared, loss_levels, bootstrap_samples, seed):
    """(summary.json's results, results.npz's arrays)."""
    levels = common_loss_levels([r.measurements["train_loss"] for r in runs], loss_levels)
    first = runs[0].measurements
    arrays: dict[str, Any] = {"learning_rates": np.asarray(learning_rates),
                              "eval_epochs": np.asarray(evals, np.int64),
                              "loss_levels": levels,
                              "train_probe_indices": prepared.train_idx,
                              "curve_edges": first["train_train/cosine/curve_edges"][-1]}
    per_lr: dict[str, Any] = {}
    table = []
    at_epoch_rows = [{"epoch": epoch} for epoch in evals]
    at_loss_rows = [{"train_loss": float(level)} for level in levels]
    for i, (lr, run) in enumerate(zip(learning_rates, runs)):
        m = run.measurements
        series = {name: m[key] for name, key in SERIES.items()}
        for name, key in SERIES.items():
            for end in ("ci_low", "ci_high"):
                if f"{key}_{end}" in m:
                    series[f"{name}_{end}"] = m[f"{key}_{end}"]
        arrays.update({f"lr{i}/{k}": v for k, v in series.items()})
        arrays[f"lr{i}/curve_means"] = m["train_train/cosine/curve_means"]
        arrays[f"lr{i}/curve_counts"] = m["train_train/cosine/curve_counts"]
        arrays[f"lr{i}/curve_edges"] = m["train_train/cosine/curve_edges"]
        arrays[f"lr{i}/epoch_loss"] = run.epoch_loss
        at_loss = {k: at_loss_levels(m["train_loss"], series[k], levels) for k in _AT_LOSS}
        at_loss["xi_linear_fit_extrapolated"] = (at_loss_levels(
            m["train_loss"], series["xi_linear_fit_extrapolated"], levels) > 0).astype(float)
        at_loss["xi_linear_fit_extrapolated"][np.isnan(at_loss["xi_linear_fit"])] = np.nan
        arrays.update({f"lr{i}/at_loss/{k}": v for k, v in at_loss.items()})
        rows = []
        for e, epoch in enumerate(evals):
            row = {"epoch": epoch,
                   **{k: float(series[k][e]) for k in ("train_loss", "train_accuracy", "within",
                                                        "between", "sign_within",
                                                        "sign_between", "m_coherence")},
                   **_xi_at(series, e)}
            intervals = {name: _ci(series, name, e) for name in
                         ("within", "between", "xi_crossing", "xi_linear_fit", "m_coherence")}
            if any(v is not None for v in intervals.values()):
                row["intervals"] = {k: v for k, v in intervals.items() if v is not None}
            rows.append(row)
            at_epoch_rows[e][lr_key(lr)] = {"within": row["within"], **_xi_at(series, e)}
            if "xi_linear_fit" in intervals and intervals["xi_linear_fit"] is not None:
                at_epoch_rows[e][lr_key(lr)]["xi_linear_fit_interval"] = intervals[
                    "xi_linear_fit"]
        for k, level in enumerate(levels):
            reached = np.isfinite(at_loss["within"][k])
            at_loss_rows[k][lr_key(lr)] = None if not reached else {
                "within": float(at_loss["within"][k]),
                "xi_crossing": {"xi": _number(at_loss["xi_crossing"][k]),
                                "status": "crossed" if np.isfinite(at_loss["xi_crossing"][k])
                                else "not crossed at both ends", "bound": None},
                "xi_linear_fit": {"xi": _number(at_loss["xi_linear_fit"][k]),
                                  "status": "fitted" if np.isfinite(at_loss["xi_linear_fit"][k])
                                  else "not fitted at both ends",
                                  "extrapolated": (None if not np.isfinite(
                                      at_loss["xi_linear_fit"][k]) else bool(
                                      at_loss["xi_linear_fit_extrapolated"][k]))}}
        final = rows[-1]
        per_lr[lr_key(lr)] = {
            "learning_rate": lr, "epochs": rows, "final": final,
            "at_loss_levels": {k: v.tolist() for k, v in at_loss.items()},
            "xi_crossed_epochs": [row["epoch"] for row in rows
                                  if row["xi_crossing"]["status"] == "crossed"],
            "xi_linear_fit_extrapolated_epochs": [
                row["epoch"] for row in rows if row["xi_linear_fit"]["extrapolated"]]}
        fitted = at_loss["xi_linear_fit"][np.isfinite(at_loss["xi_linear_fit"])]
        table.append({"learning_rate": lr, "final_train_loss": final["train_loss"],
                      "final_within": final["within"], "final_between": final["between"],
                      "final_xi_crossing": final["xi_crossing"],
                      "final_xi_linear_fit": final["xi_linear_fit"],
                      "final_intervals": final.get("intervals"),
                      "mean_within_at_loss_levels": _nanmean_or_none(at_loss["within"]),
                      "mean_xi_crossing_at_loss_levels": _nanmean_or_none(
                          at_loss["xi_crossing"]),
                      "mean_xi_linear_fit_at_loss_levels": _nanmean_or_none(
                          at_loss["xi_linear_fit"]),
                      "xi_linear_fit_extrapolated_at_loss_levels": int(np.nansum(
                          at_loss["xi_linear_fit_extrapolated"])),
                      "xi_linear_fit_at_loss_levels": int(fitted.size)})
    results = {"num_classes": prepared.num_classes, "train_examples": len(prepared.train),
               "train_probe": len(prepared.train_idx),
               "gram_method": str(first["gram_method"][-1]), "loss_levels": levels.tolist(),
               "train_loss": "mean cross-entropy of one pass over the training split in "
                             "inference mode",
               "critical_length": result_dicts.CRITICAL_LENGTH_NOTE,
               "bootstrap": result_dicts.bootstrap_note(bootstrap_samples, seed),
               "learning_rates": per_lr, "table": table,
               "xi_table": {"at_equal_epoch": at_epoch_rows, "at_equal_loss": at_loss_rows}}
    return results, arrays


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _nanmean_or_none(values: np.ndarray) -> float | None:
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else None


def _history(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Run label -> series of `plots.training_curves`, from results.npz arrays."""
    history = {}
    evals = np.asarray(arrays["eval_epochs"], np.float64)
    for i, lr in enumerate(np.asarray(arrays["learning_rates"]).tolist()):
        prefix = f"lr{i}/"
        run = {"epoch": evals}
        for key, value in arrays.items():
            if key.startswith(prefix) and "/" not in key[len(prefix):]:
                name = key[len(prefix):]
                run[name.replace("_ci_", "_")] = value
        history[lr_key(lr)] = run
    return history


def figures_of(arrays: Mapping[str, np.ndarray],
               band_note: str = "bootstrap 95% intervals over the probe",
               curve_arrays: Mapping[str, np.ndarray] | None = None,
               curve_note: str = "") -> dict[str, Any]:
    """by_epoch, by_train_loss and stiffness_vs_distance from results.npz arrays (one run's,
    or the mean over seeds with intervals across seeds); the distance curves come from
    `curve_arrays` (default `arrays`: curves of different probes do not average)."""
    from tfstiffness.outputs import plots

    history = _history(arrays)
    metrics = ("within", "between", "xi_crossing", "xi_linear_fit")
    evals = np.asarray(arrays["eval_epochs"])
    figures = {
        "by_epoch": plots.training_curves(
            history, x="epoch", metrics=metrics,
            title=f"Learning rates compared at equal epoch (train-train cosine; shaded: "
                  f"{band_note})"),
        "by_train_loss": plots.training_curves(
            history, x="train_loss", metrics=metrics,
            title=f"Learning rates compared at equal training loss (shaded: {band_note})"),
    }
    entries = []
    curve_arrays = arrays if curve_arrays is None else curve_arrays
    for i, lr in enumerate(np.asarray(curve_arrays["learning_rates"]).tolist()):
        m = {f"train_train/cosine/{k[len(f'lr{i}/'):]}": v for k, v in curve_arrays.items()
             if k.startswith(f"lr{i}/")}
        found = result_dicts.curve_at(m, len(evals) - 1)
        if found is not None:
            entries.append((*found, lr_key(lr)))
    figures["stiffness_vs_distance"] = plots.stiffness_vs_distance(
        entries, title=f"Within-class cosine stiffness vs distance, epoch {int(evals[-1])}"
                       f"{curve_note}")
    return figures


def seed_figures(study: str, stacked: Mapping[str, np.ndarray],
                 config: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of the mean over seeds, bands across seeds (`seeds.run_seeds`)."""
    seeds = stacked["seeds"].tolist()
    first = {key: value[0] for key, value in stacked.items() if key != "seeds"}
    return figures_of(seeds_lib.mean_with_interval(stacked),
                      band_note=seeds_lib.band_note(len(seeds)), curve_arrays=first,
                      curve_note=f" (seed {seeds[0]} of {len(seeds)} seeds)")


def _seed_headline(results: Mapping[str, Any]) -> list[str]:
    """Per learning rate: the final within-class stiffness and linear-fit xi and the mean
    within-class stiffness at the common loss levels, mean over seeds [95% t-interval]."""

    def text(value: Any) -> str:
        if isinstance(value, Mapping):
            if value.get("low") is None:
                return progress.format_number(value.get("mean"))
            return f"{value['mean']:.3g} [{value['low']:.3g}, {value['high']:.3g}]"
        return progress.format_number(value)

    lines = []
    for row in results["across_seeds"]["table"]:
        lines.append(
            f"{lr_key(row['learning_rate'])}, mean over seeds {results['seeds']} (95% "
            f"t-interval): final within {text(row['final_within'])}, final xi linear fit "
            f"{text(row['final_xi_linear_fit']['xi'])}; at the common loss levels: mean "
            f"within {text(row['mean_within_at_loss_levels'])}, mean xi linear fit "
            f"{text(row['mean_xi_linear_fit_at_loss_levels'])}")
    return lines


def _seed_tensorboard(averaged: Mapping[str, np.ndarray]):
    """TensorBoard runs ``lr=<lr>/mean_over_seeds``: the mean series over seeds."""
    evals = np.asarray(averaged["eval_epochs"]).tolist()
    runs = {}
    for i, lr in enumerate(np.asarray(averaged["learning_rates"]).tolist()):
        series = seeds_lib.scalar_series(averaged, list(averaged), f"lr{i}/", len(evals))
        runs[f"{lr_key(lr)}/mean_over_seeds"] = (evals, {
            f"stiffness/train_train/cosine/{name}": values for name, values in series.items()
            if name in ("within", "between", "xi_crossing", "xi_linear_fit")})
    return runs


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


# The entry point, from the config.
run_learning_rate_study = seeds_lib.study_function(
    LearningRateStudyConfig, _run_once, name="run_learning_rate_study",
    description="""The learning-rate study (see the module docstring), with the parameters of
    `LearningRateStudyConfig`.""",
    figures=seed_figures, tensorboard=_seed_tensorboard, headline=_seed_headline)
