"""Stiffness against input distance: the binned curve, its pair counts and the critical length
xi by both estimators (`measures.critical_length`: crossing and linear fit)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy

from tfstiffness.outputs.plots.style import edges_from_centres, field, finish, new_figure


def _curve_entries(curve: Any, critical: Any, label: str | None) -> list[tuple[Any, Any, Any]]:
    if isinstance(curve, (list, tuple)):
        entries = []
        for item in curve:
            if isinstance(item, (list, tuple)):
                if not 1 <= len(item) <= 3:
                    raise ValueError("each overlay entry is (curve[, critical[, label]])")
                item = tuple(item) + (None,) * (3 - len(item))
                entries.append(item)
            else:
                entries.append((item, None, None))
        return entries
    return [(curve, critical, label)]


def _xi_status(critical: Any) -> tuple[float | None, str | None, float | None]:
    """(xi, status, bound) of a critical-length object, a plain number, or None."""
    if critical is None:
        return None, None, None
    if isinstance(critical, (int, float, np.number)):
        xi = float(critical)
        return (xi, "crossed", None) if math.isfinite(xi) else (None, None, None)
    xi = field(critical, "xi")
    status = field(critical, "status")
    bound = field(critical, "bound")
    if status is None:
        status = "crossed" if xi is not None else None
    xi = None if xi is None or not math.isfinite(float(xi)) else float(xi)
    bound = None if bound is None or not math.isfinite(float(bound)) else float(bound)
    return xi, status, bound


def _estimates(critical: Any) -> tuple[Any, Any]:
    """(crossing, linear fit) of `critical`: one estimate, a sequence of them, or None."""
    if critical is None or isinstance(critical, (int, float, np.number)):
        return critical, None
    items = list(critical) if isinstance(critical, (list, tuple)) else [critical]
    crossing = fit = None
    for item in items:
        if item is None:
            continue
        if field(item, "method") == "linear_fit":
            fit = item
        else:
            crossing = item
    return crossing, fit


# Distances d = 1 - cos lie in [0, 2]: a fitted xi beyond is not drawn on the axis.
_LARGEST_DISTANCE = 2.0


def _draw_linear_fit(ax, fit: Any, colour: str, prefix: str) -> None:
    """The fitted line over the distances it saw, continued (thinner) to its xi when xi is
    extrapolated, xi as an x on the zero line, and a legend entry saying which."""
    slope, intercept = field(fit, "slope"), field(fit, "intercept")
    status, xi = field(fit, "status"), field(fit, "xi")
    r_squared = field(fit, "r_squared")
    fit_text = "" if r_squared is None or not math.isfinite(float(r_squared)) else (
        f", R² {float(r_squared):.2f}")
    if slope is None or intercept is None or not math.isfinite(float(slope)):
        ax.plot([], [], linestyle="none", label=f"{prefix}linear fit: no ξ ({status})")
        return
    slope, intercept = float(slope), float(intercept)
    low, high = field(fit, "distance_range") or ax.get_xlim()
    seen = np.linspace(float(low), float(high), 2)
    ax.plot(seen, slope * seen + intercept, ":", color=colour, linewidth=1.6)
    if status != "fitted" or xi is None or not math.isfinite(float(xi)):
        reason = {"no_decay": "no decay", "nonpositive_at_zero": "≤ 0 at distance 0"}.get(
            status, str(status))
        ax.plot([], [], ":", color=colour,
                label=f"{prefix}linear fit: no ξ ({reason}; slope {slope:+.3g}{fit_text})")
        return
    xi = float(xi)
    extrapolated = bool(field(fit, "extrapolated"))
    low, high = float(low), float(high)
    # An extrapolated line is continued at most one measured range past it (and never past
    # the largest possible distance), so a far xi does not squash the measured curve.
    limit = min(_LARGEST_DISTANCE, high + (high - low))
    if extrapolated:
        end = min(xi, limit) if xi > high else max(xi, 0.0)
        reach = np.linspace(high if xi > high else low, end, 2)
        ax.plot(reach, slope * reach + intercept, ":", color=colour, linewidth=0.8, alpha=0.7)
    where = (f", extrapolated past {high:.3g}" if extrapolated and xi > high else
             f", extrapolated below {low:.3g}" if extrapolated else "")
    if xi > _LARGEST_DISTANCE:
        where += f" and past d = {_LARGEST_DISTANCE:g}"
    label = f"{prefix}ξ = {xi:.3g} (linear fit{fit_text}{where})"
    if xi <= limit:
        ax.plot([xi], [0.0], marker="X", color=colour, markersize=8, markeredgecolor="black",
                markeredgewidth=0.5, linestyle=":",
                markerfacecolor="white" if extrapolated else colour, label=label, zorder=5)
    else:
        ax.plot([], [], ":", color=colour, label=label)



def stiffness_vs_distance(
    curve: Any,
    critical: Any = None,
    path: str | os.PathLike | None = None,
    label: str | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Figure:
    """Mean stiffness per distance bin, with pair counts and the critical length xi by both
    estimators.

    Empty bins (NaN mean) are skipped. The count per bin is a light bar chart on a twin axis.
    Crossing estimator: when the curve crossed zero, xi is a dashed vertical line with its
    value in the legend; otherwise a triangle on the zero line at the bound points to where xi
    lies, and the legend says "xi > bound" (never crossed: xi lies beyond the largest distance
    seen) or "xi < bound" (non-positive from the first bin), never an invented number. Linear
    fit: the fitted line (dotted) over the distances measured and its xi as an X on the zero
    line; an extrapolated xi is a hollow X, reached by a thinner continuation of the line
    (drawn at most one measured range past the data: a farther xi is in the legend only), and
    the legend says "extrapolated". With more than three legend entries the legend goes below
    the plot, clear of the curves.

    Args:
        curve: An object (or mapping) with `edges` [B+1] (optional), `centres` [B], `means` [B]
            (NaN for empty bins), `counts` [B] (optional) and `pairs` (str, optional). Or a list
            of `curve` or `(curve, critical, label)` entries to overlay, e.g. one per learning
            rate; then `critical` and `label` are ignored.
        critical: The critical length: an object with `xi`, `status` and `bound` (and, for the
            linear fit, `method` "linear_fit", `slope`, `intercept`, `r_squared`,
            `extrapolated`, `distance_range`: a `measures.CriticalLength`), a sequence of such
            objects (one per estimator), or a plain float xi.
        path: Where to save the figure (.png/.pdf/.svg), or None.
        label: Legend label of the curve.
        ax: Existing axes to draw into (its figure is returned and saved); default a new figure.
        title: Axes title; default names the kind of pairs.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace as NS
        >>> edges = np.linspace(0, 2, 6)
        >>> c = NS(edges=edges, centres=(edges[1:] + edges[:-1]) / 2,
        ...        means=np.array([0.5, 0.2, -0.1, np.nan, -0.2]),
        ...        counts=np.array([10, 40, 80, 0, 5]), pairs="within")
        >>> xi = NS(xi=0.93, status="crossed", bound=None)
        >>> fig = stiffness_vs_distance(c, xi, label="lr=0.01")
        >>> fig.axes[0].get_ylabel()
        'mean stiffness'
    """
    entries = _curve_entries(curve, critical, label)
    own_figure = ax is None
    fig, ax, counts_ax = _curve_axes(entries, ax)
    multi = len(entries) > 1
    pair_kinds = set()
    per_entry = 1  # legend entries of the curve with the most (its line and its xi)
    for index, (entry_curve, entry_critical, entry_label) in enumerate(entries):
        colour = f"C{index % 10}"
        pairs = _draw_curve(ax, counts_ax, entry_curve, entry_label, index, multi)
        if pairs is not None:
            pair_kinds.add(pairs)
        crossing, fit = _estimates(entry_critical)
        per_entry = max(per_entry, 1 + (crossing is not None) + (fit is not None))
        prefix = f"{entry_label}: " if (multi and entry_label is not None) else ""
        # Overlays often share a bound (the same probe): their markers are stacked.
        stack = index - (len(entries) - 1) / 2
        _draw_crossing(ax, crossing, colour, prefix, with_fit=fit is not None, stack=stack)
        if fit is not None:
            _draw_linear_fit(ax, fit, colour, prefix)
    _label_curve_axes(ax, counts_ax)
    _place_legend(fig, ax, own_figure, len(entries), per_entry)
    if title is None:
        kind = f" ({pair_kinds.pop()} pairs)" if len(pair_kinds) == 1 else ""
        title = f"Stiffness vs distance{kind}"
    ax.set_title(title)
    return finish(fig, path)


def _curve_axes(entries: list[tuple[Any, Any, Any]], ax: Any) -> tuple[Figure, Any, Any]:
    """(figure, curve axes, pair-count axes): a new figure sized for the entries unless `ax`
    is given; the counts on a twin axis behind the curves."""
    if ax is None:
        with_fit = any(_estimates(entry[1])[1] is not None for entry in entries)
        fig = new_figure((9.0 if with_fit else 7.5, 4.5 + 0.25 * max(len(entries) - 1, 0)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    counts_ax = ax.twinx()
    # Counts behind the curves: the main axes on top with a transparent background.
    ax.set_zorder(counts_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    return fig, ax, counts_ax


def _draw_curve(ax, counts_ax, curve: Any, label: str | None, index: int,
                multi: bool) -> str | None:
    """One curve's filled bins as a line and its pair counts as stairs; returns its `pairs`."""
    colour = f"C{index % 10}"
    centres = np.asarray(field(curve, "centres"), dtype=np.float64).reshape(-1)
    means = np.asarray(field(curve, "means"), dtype=np.float64).reshape(-1)
    if centres.shape != means.shape:
        raise ValueError(f"centres {centres.shape} and means {means.shape} differ")
    edges = field(curve, "edges")
    counts = field(curve, "counts")
    pairs = field(curve, "pairs")

    filled = np.isfinite(means)
    name = label if label is not None else (None if multi else "mean stiffness")
    if name is None:
        name = f"curve {index + 1}"
    ax.plot(centres[filled], means[filled], "o-", color=colour, markersize=4, label=name)

    if counts is not None:
        counts = np.asarray(counts, dtype=np.float64).reshape(-1)
        if edges is not None:
            edges = np.asarray(edges, dtype=np.float64).reshape(-1)
        else:
            edges = edges_from_centres(centres)
        bar_colour = "grey" if not multi else colour
        counts_ax.stairs(counts, edges, fill=True, color=bar_colour,
                         alpha=0.18 if not multi else 0.10)
    return None if pairs is None else str(pairs)


def _draw_crossing(ax, crossing: Any, colour: str, prefix: str, with_fit: bool,
                   stack: float) -> None:
    """The crossing estimator's xi: a dashed line where the curve crossed zero, else a marker
    on the zero line at the bound pointing to where xi lies (lifted by `stack` marker
    heights), stated in the legend (text in the plot would cross the curves)."""
    if crossing is None:
        return
    xi, status, bound = _xi_status(crossing)
    how = " (crossing)" if with_fit else ""
    if status == "crossed" and xi is not None:
        ax.axvline(xi, color=colour, linestyle="--", linewidth=1.2,
                   label=f"{prefix}ξ = {xi:.3g}{how}")
        return
    if status == "never_crossed" and bound is not None:
        text, marker = f"{prefix}ξ > {bound:.3g} (never crossed)", ">"
    elif status == "nonpositive_from_start" and bound is not None:
        text, marker = f"{prefix}ξ < {bound:.3g} (≤ 0 from the first bin)", "<"
    else:
        ax.plot([], [], linestyle="none", label=f"{prefix}ξ undefined ({status})")
        return
    lift = offset_copy(ax.transData, fig=ax.figure, units="points", y=9.0 * stack)
    ax.plot([bound], [0.0], marker=marker, color=colour, markersize=9,
            markeredgecolor="black", markeredgewidth=0.6, linestyle="none",
            label=text, zorder=5, transform=lift)


def _label_curve_axes(ax, counts_ax) -> None:
    """The zero line, room around it for the bound markers, and the axis labels."""
    ax.axhline(0.0, color="black", linewidth=0.8)
    low, high = ax.get_ylim()
    # Room below and above the zero line for the stacked bound markers.
    ax.set_ylim(min(low, -0.08 * (high - low)), max(high, 0.08 * (high - low)))
    ax.set_xlabel("distance  d = 1 − x̂₁·x̂₂")
    ax.set_ylabel("mean stiffness")
    counts_ax.set_ylabel("pairs per bin", color="0.4")
    counts_ax.tick_params(axis="y", colors="0.4")


def _place_legend(fig: Figure, ax, own_figure: bool, num_curves: int, per_entry: int) -> None:
    """In the axes; with more than three entries on a figure of its own, below the plot,
    where they cover no curve: one column per curve (its line above its xi) when every curve
    has all of its entries."""
    handles, labels = ax.get_legend_handles_labels()
    if own_figure and len(handles) > 3:
        longest = max(len(text) for text in labels)
        columns = (1 if longest > 48 else num_curves
                   if len(handles) == per_entry * num_curves and num_curves <= 3 else 2)
        fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8,
                   frameon=False)
    else:
        ax.legend(loc="best", fontsize=8, framealpha=0.85)

