"""The studies' own figures: the class study's curves through training, Walker's
neighbourhood maps and layer-wise curves, and a saved model's stiffness against distance.

Each function takes arrays (or a summary) and returns a matplotlib figure on an Agg canvas;
none computes a measure (outputs never compute). They draw through `plots`' public helpers
(`plots.diverging_cmap`, `plots.symmetric_norm`, `plots.stiffness_vs_distance`, ...); a study
saves them with its run directory (`plots.save_figure`).

Example:
    >>> import numpy as np
    >>> r = {"4_relu": {"layers": ["dense_0", "logits"],
    ...      "untrained": {"within": [0.5, 0.9], "between": [0.1, -0.8]},
    ...      "trained": {"within": [0.3, 0.7], "between": [0.0, -0.5]}}}
    >>> len(layerwise_figure(r, [[4]], ["relu"], ["4_relu"]).axes)
    2
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["STAGE_TITLES", "curves_figure", "layerwise_figure", "neighbourhoods_figure",
           "summary_distance_figure"]

#: The pairings of the class study, and their line styles in `curves_figure`.
_PAIR_STYLES = {"train_train": "-", "train_val": "--", "val_val": ":"}
_KINDS = ("sign", "cosine")
_STAT_COLOURS = {"within": "C0", "between": "C3"}
_XI_KEY = "train_train/cosine/xi_linear_fit"
_CROSSING_KEY = "train_train/cosine/xi_crossing"
#: Row titles of `neighbourhoods_figure`, by stage.
STAGE_TITLES = {"init": "at initialisation", "trained": "after training"}


def _figure(figsize: tuple[float, float]):
    """A constrained-layout figure with an Agg canvas (no pyplot backend needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------------------------
# The class study's curves through training
# --------------------------------------------------------------------------------------------


class _SeriesPlotter:
    """Draws measured series against the epochs, a band where ``KEY_ci_low/high`` exist."""

    def __init__(self, epochs: np.ndarray, m: Mapping[str, np.ndarray]):
        self.epochs, self.m, self.banded = epochs, m, False

    def __call__(self, ax, key: str, style: str, colour: str, hollow: np.ndarray | None = None,
                 label: str | None = None) -> None:
        epochs, m = self.epochs, self.m
        ys = np.asarray(m[key], np.float64)
        if f"{key}_ci_low" in m:
            low = np.asarray(m[f"{key}_ci_low"], np.float64)
            high = np.asarray(m[f"{key}_ci_high"], np.float64)
            finite = np.isfinite(low) & np.isfinite(high)
            if finite.any():
                ax.fill_between(epochs, np.where(finite, low, np.nan),
                                np.where(finite, high, np.nan), where=finite, color=colour,
                                alpha=0.13, linewidth=0)
                self.banded = True
        ax.plot(epochs, ys, style, color=colour, label=label)
        hollow = np.zeros(ys.shape, bool) if hollow is None else hollow
        ax.plot(epochs[~hollow], ys[~hollow], "o", color=colour, markersize=3.5)
        ax.plot(epochs[hollow], ys[hollow], "o", color=colour, markersize=5,
                markerfacecolor="white")


def _cap_xi_axis(ax, series: Sequence[Any]) -> None:
    """y up to 1.5 x the largest xi drawn (at least 2.2, past the largest possible distance
    2), on a log scale when the xi drawn span more than a factor of 10: an extrapolated xi
    (and its interval) can reach hundreds when the fitted slope is nearly flat, and would
    flatten the other points; such a band runs off the top."""
    values = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in series] or [[]])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() > 10 * values.min():
        ax.set_yscale("log")
        ax.set_ylim(values.min() / 1.5, 1.5 * values.max())
        ax.set_ylabel("ξ (input distance, log scale)")
        return
    ax.set_ylim(0.0, max(2.2, 1.5 * values.max()) if values.size else 2.2)


def _stiffness_panels(axes, plot: _SeriesPlotter, pairs: Sequence[str]) -> None:
    for kind in _KINDS:
        ax = axes[kind]
        for pair in pairs:
            for stat, colour in _STAT_COLOURS.items():
                plot(ax, f"{pair}/{kind}/{stat}", _PAIR_STYLES[pair], colour)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"{kind.capitalize()} stiffness")
        ax.set_ylabel(f"class {kind} stiffness")


def _xi_panel(ax, plot: _SeriesPlotter) -> None:
    """The critical length by both estimators and the largest distance measured."""
    m, epochs = plot.m, plot.epochs
    if _CROSSING_KEY in m:
        crossed = np.isfinite(np.asarray(m[_CROSSING_KEY], np.float64))
        plot(ax, _CROSSING_KEY, "-", "C4",
             label="crossing" + ("" if crossed.any() else
                                 ": never crossed zero (ξ beyond the dotted line)"))
    if _XI_KEY in m:
        extrapolated = np.asarray(m[f"{_XI_KEY}_extrapolated"], np.float64) == 1
        plot(ax, _XI_KEY, "-", "C2", hollow=extrapolated,
             label="linear fit (open: extrapolated)")
    largest: list[float] = []
    if "train_train/cosine/curve_edges" in m:
        edges = np.asarray(m["train_train/cosine/curve_edges"], np.float64)
        counts = np.asarray(m["train_train/cosine/curve_counts"])
        largest = [e[np.flatnonzero(c > 0)[-1] + 1] if (c > 0).any() else np.nan
                   for e, c in zip(edges.reshape(len(epochs), -1),
                                   counts.reshape(len(epochs), -1))]
        ax.plot(epochs, largest, ":", color="0.4", label="largest distance measured")
    _cap_xi_axis(ax, [m[key] for key in (_CROSSING_KEY, _XI_KEY) if key in m] + [largest])
    ax.set_title("Critical length ξ (train-train cosine)")
    if ax.get_yscale() != "log":
        ax.set_ylabel("ξ (input distance)")
    ax.legend(fontsize=8)


def _alignment_panel(ax, plot: _SeriesPlotter) -> None:
    for pair, colour in (("train_train", "C0"), ("val_val", "C1")):
        if f"{pair}/alignment/m_coherence" in plot.m:
            plot(ax, f"{pair}/alignment/m_coherence", _PAIR_STYLES[pair], colour,
                 label=pair.replace("_", "-"))
    ax.axhline(1, color="black", linewidth=0.6)
    ax.set_title("m-coherence (1: orthogonal gradients)")
    ax.set_ylabel("m-coherence")
    ax.legend(fontsize=8)


def _loss_and_accuracy_panels(axes, epochs: np.ndarray, m: Mapping[str, np.ndarray],
                              epoch_loss: Any) -> None:
    ax = axes["loss"]
    ax.plot(epochs, m["train_loss"], "o-", color="C0", markersize=3.5,
            label="train (full pass, inference)")
    if "val_loss" in m:
        ax.plot(epochs, m["val_loss"], "o-", color="C1", markersize=3.5,
                label="validation (full pass)")
    if epoch_loss is not None and len(epoch_loss):
        ax.plot(np.arange(1, len(epoch_loss) + 1), epoch_loss, "-", color="0.55",
                linewidth=1.0, label="mean mini-batch loss of the epoch")
    values = np.concatenate([np.ravel(m["train_loss"]), np.ravel(m.get("val_loss", []))])
    if np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")  # The untrained loss would squash later epochs on a linear axis.
    ax.set_title("Loss")
    ax.set_ylabel("cross-entropy (log scale)")
    ax.legend(fontsize=8)
    ax = axes["accuracy"]
    ax.plot(epochs, m["train_accuracy"], "o-", color="C0", markersize=3.5, label="train")
    if "val_accuracy" in m:
        ax.plot(epochs, m["val_accuracy"], "o-", color="C1", markersize=3.5,
                label="validation")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Accuracy (full passes)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)


def _contrast_panels(axes, plot: _SeriesPlotter, pairs: Sequence[str]) -> None:
    for kind in _KINDS:
        ax = axes[f"contrast_{kind}"]
        for pair in pairs:
            plot(ax, f"{pair}/{kind}/superclass_contrast", _PAIR_STYLES[pair], "C2")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"Super-class contrast, {kind}")
        ax.set_ylabel("same super-class minus other")


def _curves_legend(fig, pairs: Sequence[str], superclasses: bool, banded: bool,
                   band_note: str) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=c, linewidth=2, label=f"{s}-class")
               for s, c in _STAT_COLOURS.items()]
    handles += [Line2D([], [], color="black", linestyle=_PAIR_STYLES[p],
                       label=p.replace("_", "-") + " pairs") for p in pairs]
    if superclasses:
        handles.append(Line2D([], [], color="C2", linewidth=2, label="super-class contrast"))
    if banded:
        handles.append(Patch(color="0.3", alpha=0.2, label=f"shaded: {band_note}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               fontsize=9, frameon=False)


def curves_figure(epochs: Any, m: Mapping[str, np.ndarray], epoch_loss: Any = None,
                  title: str | None = None, band_note: str = "95% intervals"):
    """Stiffness, xi, alignment, loss and accuracy through training, and the super-class
    contrast if any.

    Panels: cosine and sign within/between-class stiffness (colour: within or between; line
    style: the pairing, train-train solid, train-val dashed, val-val dotted, in one legend
    below); when `m` has them, the train-train cosine critical length xi by both estimators
    (crossing, linear fit; an extrapolated linear-fit xi is a hollow marker) and the
    m-coherence of the train and val probes; loss on a log scale (full passes over each
    split, and the mean mini-batch loss of each epoch), accuracy, and (when `m` has
    ``.../superclass_contrast``) the cosine and sign super-class contrast. A measure with
    ``KEY_ci_low`` and ``KEY_ci_high`` in `m` gets a shaded band (`band_note` says what it is).

    Args:
        epochs: [E] measured epochs.
        m: Measurements stacked over the measured epochs (`studies.runner.train_measured`).
        epoch_loss: Optional [epochs] mean mini-batch loss of epochs 1, 2, ...
        title: Figure title.
        band_note: What the bands are, for the legend.

    Returns:
        A matplotlib figure (Agg canvas).
    """
    from matplotlib.ticker import MaxNLocator

    superclasses = f"{next(iter(_PAIR_STYLES))}/cosine/superclass_contrast" in m
    alignment = "train_train/alignment/m_coherence" in m
    pairs = [p for p in _PAIR_STYLES if f"{p}/cosine/within" in m]
    mosaic = [["cosine", "sign"]]
    if _XI_KEY in m or alignment:
        mosaic.append(["xi", "alignment"])
    mosaic.append(["loss", "accuracy"])
    if superclasses:
        mosaic.append(["contrast_cosine", "contrast_sign"])
    fig = _figure((11.0, 3.5 * len(mosaic) + 0.9))
    axes = fig.subplot_mosaic(mosaic)
    epochs = np.asarray(epochs)
    plot = _SeriesPlotter(epochs, m)
    _stiffness_panels(axes, plot, pairs)
    if "xi" in axes:
        _xi_panel(axes["xi"], plot)
        _alignment_panel(axes["alignment"], plot)
    _loss_and_accuracy_panels(axes, epochs, m, epoch_loss)
    if superclasses:
        _contrast_panels(axes, plot, pairs)
    for ax in axes.values():
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    _curves_legend(fig, pairs, superclasses, plot.banded, band_note)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# Walker's studies
# --------------------------------------------------------------------------------------------


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    mid = (centres[1:] + centres[:-1]) / 2
    return np.r_[2 * centres[0] - mid[0], mid, 2 * centres[-1] - mid[-1]]


def neighbourhoods_figure(
    x: np.ndarray,
    y: np.ndarray,
    values: Mapping[str, np.ndarray],
    radii: Sequence[float],
    aucs: Mapping[str, Sequence[float | None]] | None = None,
    accuracies: Mapping[str, float] | None = None,
    label_rule: Callable[[np.ndarray], np.ndarray] | None = None,
):
    """Grid of neighbourhood-stiffness maps: one row per stage, one column per radius.

    Each panel shows the grid points' values as cells on one shared colour scale [-1, 1]
    (blue: gradients of neighbours disagree; grey: no neighbour) and, given the labelling
    rule, the true class boundary as a black line.

    Args:
        x: [N, 2] points of a full grid (as `synthetic.two_arcs_grid` makes them).
        y: [N] labels (unused for drawing the boundary, which is exact; kept for checks).
        values: Stage name -> [R, N] neighbourhood stiffness per radius.
        radii: The R radii.
        aucs: Optional stage name -> [R] boundary AUC per radius (None: undefined), for the
            panel titles.
        accuracies: Optional stage name -> accuracy, for the row labels.
        label_rule: Optional exact labelling of [P, 2] points (e.g.
            `synthetic.two_arcs_labels`): its 0.5 level is drawn as the class boundary.

    Returns:
        A matplotlib figure (Agg canvas).

    Example:
        >>> from tfstiffness.data import synthetic
        >>> x, y = synthetic.two_arcs_grid(10)
        >>> fig = neighbourhoods_figure(x, y, {"init": np.zeros((1, 100))}, [0.3],
        ...                             label_rule=synthetic.two_arcs_labels)
        >>> len(fig.axes)  # One map and the colour bar.
        2
    """
    from matplotlib.lines import Line2D

    from tfstiffness.outputs import plots

    x = np.asarray(x, dtype=np.float64)
    n = round(np.sqrt(len(x)))
    if n * n != len(x) or len(y) != len(x):
        raise ValueError("x must be a full square grid with one label per point")
    edges_x = _cell_edges(np.unique(x[:, 0]))
    edges_y = _cell_edges(np.unique(x[:, 1]))
    # The exact boundary: the 0.5 level of the labelling rule on a fine grid.
    fine = np.linspace(-1.0, 1.0, 401)
    fx, fy = np.meshgrid(fine, fine)
    fine_labels = (None if label_rule is None else
                   label_rule(np.stack([fx.ravel(), fy.ravel()], 1)).reshape(fx.shape))

    stages = list(values)
    fig = _figure((3.3 * len(radii) + 1.0, 3.3 * len(stages) + 0.7))
    axes = fig.subplots(len(stages), len(radii), squeeze=False, sharex=True, sharey=True)
    cmap, norm = plots.diverging_cmap(), plots.symmetric_norm([], vmax=1.0)
    mesh = None
    for row, stage in enumerate(stages):
        for col, radius in enumerate(radii):
            ax = axes[row, col]
            Z = np.asarray(values[stage][col], dtype=np.float64).reshape(n, n)
            ax.set_facecolor(plots.NAN_COLOUR)
            mesh = ax.pcolormesh(edges_x, edges_y, np.ma.masked_invalid(Z), cmap=cmap,
                                 norm=norm, shading="flat")
            if fine_labels is not None:
                ax.contour(fx, fy, fine_labels, levels=[0.5], colors="black", linewidths=1.3)
            title = f"r = {radius:g}"
            if aucs is not None:
                auc = aucs[stage][col]
                title += f"   boundary AUC {auc:.3f}" if auc is not None else "   AUC n/a"
            ax.set_title(title, fontsize=10)
            ax.set_aspect("equal")
            if col == 0:
                label = STAGE_TITLES.get(stage, stage)
                if accuracies is not None:
                    label += f"\n(accuracy {100 * accuracies[stage]:.1f} %)"
                ax.set_ylabel(f"{label}\n$x_2$")
            if row == len(stages) - 1:
                ax.set_xlabel("$x_1$")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="mean cosine stiffness to neighbours")
    if fine_labels is not None:
        fig.legend(handles=[Line2D([], [], color="black", linewidth=1.3, label="true boundary")],
                   loc="outside lower center", frameon=False, fontsize=9)
    fig.suptitle("Neighbourhood stiffness, two-arcs grid")
    return fig


def layerwise_figure(
    model_results: Mapping[str, Mapping[str, Any]],
    hidden_widths: Sequence[Sequence[int]],
    activations: Sequence[str],
    keys: Sequence[str],
):
    """Within- and between-class stiffness per layer: one row per widths, one column per metric.

    Colour marks the activation; solid lines are trained models, dashed lines untrained.

    Args:
        model_results: model key -> {"layers": [...], "untrained"/"trained": {"within":
            [...], "between": [...]}}, as in the summary of `studies.layerwise`; optional
            ``"within_low"`` / ``"within_high"`` (and between) lists draw a shaded band.
        hidden_widths: The widths configurations (rows).
        activations: The activations (colours).
        keys: The model key of each (widths, activation), row by row
            (`studies.layerwise.model_key`).

    Returns:
        A matplotlib figure (Agg canvas).
    """
    from matplotlib.lines import Line2D

    metrics = ("within", "between")
    fig = _figure((10.0, 2.9 * len(hidden_widths) + 0.9))
    axes = fig.subplots(len(hidden_widths), len(metrics), squeeze=False, sharey=True)
    colours = {a: f"C{i % 10}" for i, a in enumerate(activations)}
    keys = iter(keys)
    for row, widths in enumerate(hidden_widths):
        entries = {activation: model_results[next(keys)] for activation in activations}
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            layers: list[str] = []
            for activation, entry in entries.items():
                layers = entry["layers"]
                for phase, style in (("untrained", "--"), ("trained", "-")):
                    values = np.array([np.nan if v is None else v for v in entry[phase][metric]],
                                      dtype=np.float64)
                    ax.plot(np.arange(values.size), values, style, marker="o", markersize=4,
                            color=colours[activation])
                    if f"{metric}_low" in entry[phase]:
                        ax.fill_between(np.arange(values.size),
                                        np.asarray(entry[phase][f"{metric}_low"], float),
                                        np.asarray(entry[phase][f"{metric}_high"], float),
                                        color=colours[activation], alpha=0.15, linewidth=0)
            sizes = [str(int(w)) for w in widths] + ["out"]
            ax.set_xticks(np.arange(len(layers)),
                          labels=[f"{name}\n({size})" for name, size in zip(layers, sizes)],
                          fontsize=8)
            ax.axhline(0.0, color="black", linewidth=0.6)
            ax.grid(alpha=0.3)
            ax.set_title(f"widths {'-'.join(map(str, widths))}: {metric}-class", fontsize=10)
            if col == 0:
                ax.set_ylabel("cosine stiffness")
    handles = [Line2D([], [], color=colours[a], linewidth=2, label=a) for a in activations]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="trained"),
                Line2D([], [], color="0.3", linestyle="--", label="untrained")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
               fontsize=9)
    fig.suptitle("Layer-wise stiffness (gradients of one layer's parameters)")
    return fig


# --------------------------------------------------------------------------------------------
# A saved model's summary
# --------------------------------------------------------------------------------------------


def summary_distance_figure(curves: Mapping[str, Any],
                            estimates: Mapping[str, tuple[Any, Any]]):
    """Stiffness vs input distance, one panel per kind, with xi by both estimators: the
    crossing (`plots.stiffness_vs_distance`) and the count-weighted linear fit (its line
    dotted, its xi dash-dotted; or the reason it gives none, in the legend).

    Args:
        curves: kind ("cosine", "sign") -> its `measures.DistanceCurve` (a
            `streaming.StiffnessSummary`'s ``distance_curve``).
        estimates: kind -> (crossing, linear fit) `measures.critical_length` of its curve.

    Returns:
        A matplotlib figure (Agg canvas).
    """
    from tfstiffness.outputs import plots

    kinds = [kind for kind in ("cosine", "sign") if kind in curves]
    fig = _figure((7.0 * len(kinds), 5.2))
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds):
        curve = curves[kind]
        crossing, fit = estimates[kind]
        plots.stiffness_vs_distance(curve, crossing, ax=ax, label=f"mean {kind} stiffness",
                                    title=f"{kind.capitalize()} stiffness vs distance "
                                          f"({curve.pairs} pairs)")
        if fit.slope is not None and np.isfinite(fit.slope):
            filled = curve.centres[np.asarray(curve.counts) > 0]  # where the line was fitted
            d = np.array([filled.min(), filled.max()])
            ax.plot(d, fit.slope * d + fit.intercept, ":", color="C3", linewidth=1.2,
                    label=f"linear fit (R² {fit.r_squared:.2f})")
        if fit.xi is not None:
            ax.axvline(fit.xi, color="C3", linestyle="-.", linewidth=1.2,
                       label=f"linear fit: ξ = {fit.xi:.3g}"
                             + (" (extrapolated)" if fit.extrapolated else ""))
        else:
            ax.plot([], [], linestyle="none", label=f"linear fit: no ξ ({fit.status})")
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return fig
