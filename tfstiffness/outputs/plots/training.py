"""Stiffness and the critical length over training, one line per run: against epochs, or
against the training loss (runs compared at equal loss)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter

from tfstiffness.outputs.plots.style import finish, new_figure

_METRIC_LABELS = {
    "within": "within-class stiffness",
    "between": "between-class stiffness",
    "xi": "critical length ξ",
    "xi_crossing": "critical length ξ (crossing)",
    "xi_linear_fit": "critical length ξ (linear fit)",
}



def training_curves(
    history: Mapping[str, Mapping[str, Any]],
    x: str = "epoch",
    path: str | os.PathLike | None = None,
    metrics: Sequence[str] = ("within", "between", "xi_crossing", "xi_linear_fit"),
    title: str | None = None,
) -> Figure:
    """Stiffness and xi over training, one line per run (e.g. per learning rate).

    With `x="train_loss"` runs are compared at equal training loss (the paper's second view):
    the x axis is inverted, so training still goes left to right, and logarithmic when all
    losses are positive.

    Args:
        history: Run label (e.g. "lr=0.001") -> mapping of equal-length arrays with the `x` key
            and the metric keys; NaN (e.g. xi undefined) leaves a gap. Optional companions of
            a metric M: ``M_low`` and ``M_high`` draw a shaded band (a confidence interval;
            infinite or NaN ends leave the band out there); ``M_status``
            (`probes.XI_STATUSES` codes or names) and ``M_bound`` mark each point where a
            crossing xi is undefined with an open triangle at its bound (up: xi lies above
            it; down: below); ``M_extrapolated`` (1/0) draws the points of an extrapolated
            linear-fit xi hollow. Each marking is explained in a legend below the panels.
        x: "epoch" or "train_loss" (any key present in every run works).
        path: Where to save the figure (.png/.pdf/.svg), or None.
        metrics: One panel per metric key, in order; keys absent from every run are dropped.
        title: Figure title.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> h = {"lr=0.01": {"epoch": np.arange(3), "train_loss": np.array([2.0, 1.0, 0.5]),
        ...                  "within": np.array([0.5, 0.4, 0.3]),
        ...                  "within_low": np.array([0.4, 0.3, 0.2]),
        ...                  "within_high": np.array([0.6, 0.5, 0.4]),
        ...                  "between": np.array([0.0, 0.1, 0.05]),
        ...                  "xi_linear_fit": np.array([2.5, 0.9, 0.6]),
        ...                  "xi_linear_fit_extrapolated": np.array([1, 0, 0])}}
        >>> fig = training_curves(h, x="train_loss")
        >>> bool(fig.axes[0].xaxis_inverted()), len(fig.axes)
        (True, 3)
    """
    if not history:
        raise ValueError("history is empty")
    shown = [m for m in metrics if any(m in run for run in history.values())]
    if not shown:
        raise ValueError(f"none of the metrics {list(metrics)} is in the history")
    fig = new_figure((4.3 * len(shown), 4.3))
    axes = fig.subplots(1, len(shown), sharex=True, squeeze=False)[0]

    all_x = []
    notes: set[str] = set()  # the markings drawn, explained in a legend below the panels
    for index, (run_label, run) in enumerate(history.items()):
        xs = _run_x(run, run_label, x, shown[0])
        all_x.append(xs)
        # Runs often share a bound (the same probe): dodge their markers so each stays visible.
        dodge = index - (len(history) - 1) / 2
        for ax, metric in zip(axes, shown):
            if metric in run:
                notes |= _draw_run(ax, xs, run, run_label, metric, x, f"C{index % 10}",
                                   dodge)
    xs_all = np.concatenate(all_x) if all_x else np.array([])
    for ax, metric in zip(axes, shown):
        _label_panel(ax, metric, x, history)
    if x == "train_loss":
        _loss_axis(axes, xs_all[np.isfinite(xs_all)])
    axes[0].legend(fontsize=8)
    if notes:
        handles = [_NOTE_HANDLES[note]() for note in sorted(notes)]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 2),
                   fontsize=8, frameon=False)
    if title is not None:
        fig.suptitle(title)
    return finish(fig, path)


def _run_x(run: Mapping[str, Any], run_label: Any, x: str, first_metric: str) -> np.ndarray:
    """A run's x values: its `x` key, or epochs counted from 0 when it has none."""
    if x in run:
        return np.asarray(run[x], dtype=np.float64).reshape(-1)
    if x == "epoch":
        return np.arange(len(np.asarray(run[first_metric]).reshape(-1)), dtype=np.float64)
    raise KeyError(f"run {run_label!r} has no {x!r} values")


def _draw_run(ax, xs: np.ndarray, run: Mapping[str, Any], run_label: Any, metric: str, x: str,
              colour: str, dodge: float) -> set[str]:
    """One run's metric in its panel: the band, the line, its points (hollow where
    extrapolated) and the bounds where xi is undefined; returns the markings drawn."""
    ys = np.asarray(run[metric], dtype=np.float64).reshape(-1)
    if ys.shape != xs.shape:
        raise ValueError(f"run {run_label!r}: {metric} has {ys.size} values, "
                         f"{x} has {xs.size}")
    notes = set()
    if f"{metric}_low" in run and f"{metric}_high" in run:
        low = np.asarray(run[f"{metric}_low"], dtype=np.float64).reshape(-1)
        high = np.asarray(run[f"{metric}_high"], dtype=np.float64).reshape(-1)
        finite = np.isfinite(low) & np.isfinite(high)
        if finite.any():
            ax.fill_between(xs, np.where(finite, low, np.nan),
                            np.where(finite, high, np.nan), color=colour, alpha=0.18,
                            linewidth=0, where=finite)
            notes.add("band")
    ax.plot(xs, ys, "-", color=colour, label=str(run_label))
    hollow = np.zeros(ys.shape, bool)
    if f"{metric}_extrapolated" in run:
        hollow = np.asarray(run[f"{metric}_extrapolated"], dtype=np.float64).reshape(-1) == 1
        if (hollow & np.isfinite(ys)).any():
            notes.add("extrapolated")
    ax.plot(xs[~hollow], ys[~hollow], "o", markersize=3.5, color=colour)
    ax.plot(xs[hollow], ys[hollow], "o", markersize=5, markerfacecolor="white",
            markeredgecolor=colour)
    if f"{metric}_bound" in run and f"{metric}_status" in run:
        shifted = xs * 1.03**dodge if x == "train_loss" else xs + 0.08 * dodge
        notes |= _xi_bounds(ax, shifted, ys, run, metric, colour)
    return notes


def _label_panel(ax, metric: str, x: str, history: Mapping[str, Mapping[str, Any]]) -> None:
    """A panel's labels, grid and zero line; an xi panel with intervals is kept to the
    values drawn."""
    if metric.startswith("xi") and any(f"{metric}_high" in run for run in history.values()):
        # An extrapolated xi's interval can reach thousands (a nearly flat fitted line):
        # keep the lines readable, let such a band run off the top.
        drawn = np.concatenate([np.ravel(np.asarray(run[key], dtype=np.float64))
                                for run in history.values()
                                for key in (metric, f"{metric}_bound") if key in run])
        drawn = drawn[np.isfinite(drawn)]
        if drawn.size:
            low, high = ax.get_ylim()
            ax.set_ylim(low, min(high, 1.5 * drawn.max()))
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.set_title(_METRIC_LABELS.get(metric, metric).capitalize(), fontsize=10)
    if not metric.startswith("xi"):
        ax.axhline(0.0, color="black", linewidth=0.6)
    ax.grid(alpha=0.3)
    if x == "train_loss":
        ax.set_xlabel("training loss (training proceeds →)")
    else:
        ax.set_xlabel(x.replace("_", " "))
        if x == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _loss_axis(axes: Sequence[Any], xs_all: np.ndarray) -> None:
    """The shared training-loss axis: inverted (training goes left to right), logarithmic
    with 1-2-5 ticks when every loss is positive."""
    if xs_all.size and np.all(xs_all > 0):
        axes[0].set_xscale("log")
        # Labelled ticks at 1-2-5 steps: a short log range has one power of ten or none,
        # and matplotlib's minor labels collide.
        nice = [m * 10.0**e for e in range(-6, 4) for m in (1, 2, 5)]
        ticks = [t for t in nice if xs_all.min() <= t <= xs_all.max()]
        for ax in axes:
            ax.xaxis.set_minor_formatter(NullFormatter())
            if len(ticks) >= 2:
                ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    axes[0].invert_xaxis()  # shared x: inverting one inverts all.



_BOUND_MARKERS = {"never_crossed": "^", "nonpositive_from_start": "v"}
_NOTE_HANDLES = {
    "never_crossed": lambda: Line2D(
        [], [], marker="^", markerfacecolor="white", markeredgecolor="0.3", linestyle="none",
        label="ξ (crossing) undefined, above the bound: stiffness > 0 at every distance"),
    "nonpositive_from_start": lambda: Line2D(
        [], [], marker="v", markerfacecolor="white", markeredgecolor="0.3", linestyle="none",
        label="ξ (crossing) undefined, below the bound: stiffness ≤ 0 from the first bin"),
    "extrapolated": lambda: Line2D(
        [], [], marker="o", markerfacecolor="white", markeredgecolor="0.3", linestyle="none",
        label="open circle: ξ (linear fit) extrapolated beyond the distances measured"),
    "band": lambda: Patch(color="0.3", alpha=0.18, label="shaded: confidence interval"),
}
_XI_STATUS_NAMES = ("crossed", "never_crossed", "nonpositive_from_start")


def _xi_bounds(ax, xs: np.ndarray, xi: np.ndarray, run: Mapping[str, Any], metric: str,
               colour: str) -> set[str]:
    """Open triangles at the bound where xi is undefined; returns the statuses drawn."""
    bounds = np.asarray(run[f"{metric}_bound"], dtype=np.float64).reshape(-1)
    statuses = list(np.asarray(run[f"{metric}_status"]).reshape(-1))
    drawn = set()
    for status, marker in _BOUND_MARKERS.items():
        codes = [_XI_STATUS_NAMES.index(status), status]
        keep = np.array([s in codes for s in statuses]) & np.isnan(xi) & np.isfinite(bounds)
        if keep.any():
            ax.plot(xs[keep], bounds[keep], linestyle="none", marker=marker, markersize=6,
                    markerfacecolor="white", markeredgecolor=colour)
            drawn.add(status)
    return drawn

