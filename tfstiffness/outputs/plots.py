"""Matplotlib figures of stiffness results, drawn without pyplot.

Every function builds a `matplotlib.figure.Figure` with an Agg canvas attached directly, so no
global pyplot state or backend is touched: safe in scripts, tests, notebooks and servers alike.
Every function returns the figure and, when `path` is given, also saves it (format from the
suffix: .png, .pdf or .svg; raster at `DPI` dots per inch), creating parent directories and
writing atomically (temporary file in the same directory, then `os.replace`), so a reader never
sees a half-written image.

Stiffness is shown with a diverging colour map centred on zero (blue negative, red positive,
`vmin == -vmax`); NaN (no pairs, undefined) is drawn light grey.

The inputs are plain numpy arrays, or duck-typed result objects read with `getattr` (curves with
`edges`, `centres`, `means`, `counts`, `pairs`; critical lengths with `xi`, `status`, `bound`).
Mappings with the same keys work too. Plotting never computes stiffness: it only draws.

Example:
    >>> import numpy as np
    >>> from tfstiffness import plots
    >>> fig = plots.class_matrix(np.array([[0.8, -0.1], [-0.1, 0.6]]), class_names=["a", "b"])
    >>> fig.axes[0].get_title()
    'Class stiffness'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch
from matplotlib.ticker import MaxNLocator, NullFormatter
from matplotlib.transforms import offset_copy

from tfstiffness.outputs.atomic import atomic_write

__all__ = [
    "DPI",
    "NAN_COLOUR",
    "class_matrix",
    "diverging_cmap",
    "layerwise_curves",
    "neighbourhood_map",
    "save_figure",
    "stiffness_vs_distance",
    "superclass_matrix",
    "symmetric_norm",
    "training_curves",
]

DPI = 150
NAN_COLOUR = "lightgrey"
_CMAP_NAME = "RdBu_r"
_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
# Class markers for scattered neighbourhood maps: shape carries the class, colour the stiffness.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
# Above this many classes, per-class tick labels collide; label blocks or let matplotlib choose.
_MAX_NAMED_TICKS = 40


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # Attach a canvas so savefig/draw work without any pyplot backend.
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Saves `fig` atomically to `path`, the format taken from its suffix.

    Args:
        fig: The figure.
        path: Destination ending in .png, .pdf or .svg; parent directories are created.
        dpi: Dots per inch for raster output.

    Returns:
        The destination as a `Path`.

    Raises:
        ValueError: If the suffix is not a supported format.

    Example:
        >>> import tempfile, numpy as np
        >>> fig = class_matrix(np.eye(2))
        >>> save_figure(fig, tempfile.mkdtemp() + "/c.png").suffix
        '.png'
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported figure format {path.suffix!r}; use {sorted(_FORMATS)}")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi)
    return path


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def diverging_cmap() -> Colormap:
    """The stiffness colour map: "RdBu_r" (blue < 0 < red) with NaN drawn light grey.

    Example:
        >>> diverging_cmap().name
        'RdBu_r'
    """
    return colormaps[_CMAP_NAME].with_extremes(bad=NAN_COLOUR)


def symmetric_norm(values: Any, vmax: float | None = None) -> Normalize:
    """A colour normalisation centred on zero: `vmin == -vmax`.

    Args:
        values: Array whose largest finite absolute value sets the range (NaN ignored).
        vmax: Fixed half-range instead (e.g. 1.0 to compare cosine-stiffness figures).

    Returns:
        `Normalize(-vmax, vmax)`; the half-range is 1 when there is no finite non-zero value.

    Example:
        >>> n = symmetric_norm([0.2, -0.5, float("nan")])
        >>> (n.vmin, n.vmax)
        (-0.5, 0.5)
    """
    if vmax is None:
        finite = np.abs(np.asarray(values, dtype=np.float64))
        finite = finite[np.isfinite(finite)]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    vmax = float(vmax)
    if not vmax > 0 or not math.isfinite(vmax):
        raise ValueError(f"vmax must be positive and finite, got {vmax}")
    return Normalize(vmin=-vmax, vmax=vmax)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping key `name` of a duck-typed result."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_matrix(C: Any) -> np.ndarray:
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"expected a square [K, K] matrix, got shape {C.shape}")
    return C


def _heatmap(fig: Figure, ax, C: np.ndarray, vmax: float | None, cbar_label: str):
    image = ax.imshow(
        np.ma.masked_invalid(C),
        cmap=diverging_cmap(),
        norm=symmetric_norm(C, vmax),
        interpolation="nearest",
    )
    ax.set_facecolor(NAN_COLOUR)
    fig.colorbar(image, ax=ax, shrink=0.85, label=cbar_label)
    return image


def _label_ticks(ax, names: Sequence[str], fontsize: float) -> None:
    positions = np.arange(len(names))
    rotation = 90 if max((len(n) for n in names), default=0) > 3 else 0
    ax.set_xticks(positions, labels=list(names), rotation=rotation, fontsize=fontsize)
    ax.set_yticks(positions, labels=list(names), fontsize=fontsize)


# --------------------------------------------------------------------------------------------
# Class matrices
# --------------------------------------------------------------------------------------------


def class_matrix(
    C: Any,
    fine_to_coarse: Any = None,
    class_names: Sequence[str] | None = None,
    coarse_names: Sequence[str] | None = None,
    title: str = "Class stiffness",
    path: str | os.PathLike | None = None,
    vmax: float | None = None,
) -> Figure:
    """Heatmap of a class stiffness matrix `C[a, b]` (row: class a, column: class b).

    With `fine_to_coarse`, classes are reordered by super-class (a stable sort, so classes keep
    their order inside a block), thin lines separate the super-classes and the axes label the
    super-class blocks instead of every class (100 names would be unreadable). The blocks along
    the diagonal are where trained CIFAR-100 models show raised stiffness.

    Args:
        C: [K, K] class stiffness; NaN where a class pair has no examples (drawn grey).
        fine_to_coarse: Optional [K] integer super-class of each class.
        class_names: Optional K class names, used as tick labels when K <= 40 and no
            `fine_to_coarse` is given.
        coarse_names: Optional names of the super-classes, indexed by super-class id.
        title: Axes title.
        path: Where to save the figure (.png/.pdf/.svg), or None.
        vmax: Fixed colour half-range; default is the largest |C|.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> C = np.full((4, 4), 0.1); np.fill_diagonal(C, 0.7)
        >>> fig = class_matrix(C, fine_to_coarse=[1, 0, 1, 0], coarse_names=["x", "y"])
        >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
        ['x', 'y']
    """
    C = _as_matrix(C)
    K = C.shape[0]
    side = float(np.clip(3.0 + 0.06 * K, 4.5, 9.5))
    fig = _new_figure((side + 1.2, side))
    ax = fig.add_subplot()

    if fine_to_coarse is None:
        _heatmap(fig, ax, C, vmax, "stiffness")
        if class_names is not None and K <= _MAX_NAMED_TICKS:
            if len(class_names) != K:
                raise ValueError(f"{len(class_names)} class names for {K} classes")
            _label_ticks(ax, class_names, fontsize=8 if K <= 20 else 6)
        else:
            # Let matplotlib place a few integer ticks rather than K overlapping labels.
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("class b")
        ax.set_ylabel("class a")
    else:
        coarse = np.asarray(fine_to_coarse).astype(np.int64).reshape(-1)
        if coarse.shape[0] != K:
            raise ValueError(f"fine_to_coarse has {coarse.shape[0]} entries for {K} classes")
        order = np.argsort(coarse, kind="stable")
        _heatmap(fig, ax, C[np.ix_(order, order)], vmax, "stiffness")
        sorted_coarse = coarse[order]
        # Block starts: index 0 and every place where the super-class changes.
        starts = np.flatnonzero(np.r_[True, sorted_coarse[1:] != sorted_coarse[:-1]])
        ends = np.r_[starts[1:], K]
        for boundary in starts[1:]:
            ax.axhline(boundary - 0.5, color="black", linewidth=0.6)
            ax.axvline(boundary - 0.5, color="black", linewidth=0.6)
        ids = sorted_coarse[starts]
        if coarse_names is not None:
            names = [str(coarse_names[i]) for i in ids]
        else:
            names = [str(i) for i in ids]
        centres = (starts + ends - 1) / 2.0
        fontsize = 8 if len(ids) <= 12 else 6.5
        ax.set_xticks(centres, labels=names, rotation=90, fontsize=fontsize)
        ax.set_yticks(centres, labels=names, fontsize=fontsize)
        ax.tick_params(length=0)
        ax.set_xlabel("class b (grouped by super-class)")
        ax.set_ylabel("class a (grouped by super-class)")
    ax.set_title(title)
    return _finish(fig, path)


def superclass_matrix(
    C20: Any,
    coarse_names: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    title: str = "Super-class stiffness",
    vmax: float | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Heatmap of a super-class stiffness matrix (20 x 20 for CIFAR-100) with names.

    As `measures.superclass_matrix` computes it, a diagonal cell is the stiffness between
    different classes of one super-class (same-class pairs are left out); the axis label says
    so.

    Args:
        C20: [S, S] super-class stiffness; NaN drawn grey.
        coarse_names: Optional S super-class names for the tick labels.
        path: Where to save the figure (.png/.pdf/.svg), or None.
        title: Axes title.
        vmax: Fixed colour half-range; default is the largest |C20|.
        annotate: Write each cell's value in it; default when S <= 20.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> fig = superclass_matrix(np.eye(3) * 0.5, coarse_names=["a", "b", "c"])
        >>> fig.axes[0].get_xlabel().splitlines()[0]
        'super-class b'
    """
    C = _as_matrix(C20)
    S = C.shape[0]
    if coarse_names is not None and len(coarse_names) != S:
        raise ValueError(f"{len(coarse_names)} super-class names for {S} super-classes")
    names = [str(n) for n in (coarse_names if coarse_names is not None else range(S))]
    side = float(np.clip(2.5 + 0.4 * S, 4.5, 10.5))
    fig = _new_figure((side + 1.5, side))
    ax = fig.add_subplot()
    image = _heatmap(fig, ax, C, vmax, "stiffness")
    _label_ticks(ax, names, fontsize=8)
    if annotate is None:
        annotate = S <= 20
    if annotate:
        norm = image.norm
        for (i, j), value in np.ndenumerate(C):
            if np.isfinite(value):
                # White text on the saturated ends of the map, black on the pale middle.
                dark = abs(norm(value) - 0.5) > 0.3
                text = f"{value:.2f}".replace("-0.00", "0.00")
                ax.text(j, i, text, ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
    ax.set_xlabel("super-class b\n(diagonal: pairs of DIFFERENT classes of one super-class; "
                  "same-class pairs excluded)", fontsize=9)
    ax.set_ylabel("super-class a")
    ax.set_title(title)
    return _finish(fig, path)


# --------------------------------------------------------------------------------------------
# Stiffness vs distance
# --------------------------------------------------------------------------------------------


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
    xi = _get(critical, "xi")
    status = _get(critical, "status")
    bound = _get(critical, "bound")
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
        if _get(item, "method") == "linear_fit":
            fit = item
        else:
            crossing = item
    return crossing, fit


# Distances d = 1 - cos lie in [0, 2]: a fitted xi beyond is not drawn on the axis.
_LARGEST_DISTANCE = 2.0


def _draw_linear_fit(ax, fit: Any, colour: str, prefix: str) -> None:
    """The fitted line over the distances it saw, continued (thinner) to its xi when xi is
    extrapolated, xi as an x on the zero line, and a legend entry saying which."""
    slope, intercept = _get(fit, "slope"), _get(fit, "intercept")
    status, xi = _get(fit, "status"), _get(fit, "xi")
    r_squared = _get(fit, "r_squared")
    fit_text = "" if r_squared is None or not math.isfinite(float(r_squared)) else (
        f", R² {float(r_squared):.2f}")
    if slope is None or intercept is None or not math.isfinite(float(slope)):
        ax.plot([], [], linestyle="none", label=f"{prefix}linear fit: no ξ ({status})")
        return
    slope, intercept = float(slope), float(intercept)
    low, high = _get(fit, "distance_range") or ax.get_xlim()
    seen = np.linspace(float(low), float(high), 2)
    ax.plot(seen, slope * seen + intercept, ":", color=colour, linewidth=1.6)
    if status != "fitted" or xi is None or not math.isfinite(float(xi)):
        reason = {"no_decay": "no decay", "nonpositive_at_zero": "≤ 0 at distance 0"}.get(
            status, str(status))
        ax.plot([], [], ":", color=colour,
                label=f"{prefix}linear fit: no ξ ({reason}; slope {slope:+.3g}{fit_text})")
        return
    xi = float(xi)
    extrapolated = bool(_get(fit, "extrapolated"))
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
    if ax is None:
        with_fit = any(_estimates(entry[1])[1] is not None for entry in entries)
        fig = _new_figure((9.0 if with_fit else 7.5, 4.5 + 0.25 * max(len(entries) - 1, 0)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    counts_ax = ax.twinx()
    # Counts behind the curves: the main axes on top with a transparent background.
    ax.set_zorder(counts_ax.get_zorder() + 1)
    ax.patch.set_visible(False)

    multi = len(entries) > 1
    pair_kinds = set()
    per_entry = 1
    for index, (entry_curve, entry_critical, entry_label) in enumerate(entries):
        colour = f"C{index % 10}"
        centres = np.asarray(_get(entry_curve, "centres"), dtype=np.float64).reshape(-1)
        means = np.asarray(_get(entry_curve, "means"), dtype=np.float64).reshape(-1)
        if centres.shape != means.shape:
            raise ValueError(f"centres {centres.shape} and means {means.shape} differ")
        edges = _get(entry_curve, "edges")
        counts = _get(entry_curve, "counts")
        pairs = _get(entry_curve, "pairs")
        if pairs is not None:
            pair_kinds.add(str(pairs))

        filled = np.isfinite(means)
        name = entry_label if entry_label is not None else (None if multi else "mean stiffness")
        if name is None:
            name = f"curve {index + 1}"
        ax.plot(centres[filled], means[filled], "o-", color=colour, markersize=4, label=name)

        if counts is not None:
            counts = np.asarray(counts, dtype=np.float64).reshape(-1)
            if edges is not None:
                edges = np.asarray(edges, dtype=np.float64).reshape(-1)
            else:
                edges = _edges_from_centres(centres)
            bar_colour = "grey" if not multi else colour
            counts_ax.stairs(counts, edges, fill=True, color=bar_colour,
                             alpha=0.18 if not multi else 0.10)

        crossing, fit = _estimates(entry_critical)
        per_entry = max(per_entry, 1 + (crossing is not None) + (fit is not None))
        xi, status, bound = _xi_status(crossing)
        prefix = f"{entry_label}: " if (multi and entry_label is not None) else ""
        how = " (crossing)" if fit is not None else ""
        if status == "crossed" and xi is not None:
            ax.axvline(xi, color=colour, linestyle="--", linewidth=1.2,
                       label=f"{prefix}ξ = {xi:.3g}{how}")
        elif crossing is not None:
            # No crossing: a marker on the zero line at the bound, pointing to where xi lies,
            # and the statement in the legend (text in the plot would cross the curves).
            if status == "never_crossed" and bound is not None:
                text, marker = f"{prefix}ξ > {bound:.3g} (never crossed)", ">"
            elif status == "nonpositive_from_start" and bound is not None:
                text, marker = f"{prefix}ξ < {bound:.3g} (≤ 0 from the first bin)", "<"
            else:
                text, marker = f"{prefix}ξ undefined ({status})", None
            if marker is not None:
                # Overlays often share a bound (the same probe): stack their markers.
                lift = offset_copy(ax.transData, fig=fig, units="points",
                                   y=9.0 * (index - (len(entries) - 1) / 2))
                ax.plot([bound], [0.0], marker=marker, color=colour, markersize=9,
                        markeredgecolor="black", markeredgewidth=0.6, linestyle="none",
                        label=text, zorder=5, transform=lift)
            else:
                ax.plot([], [], linestyle="none", label=text)
        if fit is not None:
            _draw_linear_fit(ax, fit, colour, prefix)

    ax.axhline(0.0, color="black", linewidth=0.8)
    low, high = ax.get_ylim()
    # Room below and above the zero line for the stacked bound markers.
    ax.set_ylim(min(low, -0.08 * (high - low)), max(high, 0.08 * (high - low)))
    ax.set_xlabel("distance  d = 1 − x̂₁·x̂₂")
    ax.set_ylabel("mean stiffness")
    counts_ax.set_ylabel("pairs per bin", color="0.4")
    counts_ax.tick_params(axis="y", colors="0.4")
    handles, labels = ax.get_legend_handles_labels()
    if own_figure and len(handles) > 3:
        # Many entries: below the plot, where they cover no curve; one column per curve
        # (its line above its xi) when every curve has all of its entries.
        longest = max(len(text) for text in labels)
        columns = (1 if longest > 48 else len(entries)
                   if len(handles) == per_entry * len(entries) and len(entries) <= 3 else 2)
        fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8,
                   frameon=False)
    else:
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    if title is None:
        kind = f" ({pair_kinds.pop()} pairs)" if len(pair_kinds) == 1 else ""
        title = f"Stiffness vs distance{kind}"
    ax.set_title(title)
    return _finish(fig, path)


def _edges_from_centres(centres: np.ndarray) -> np.ndarray:
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = (centres[1:] + centres[:-1]) / 2.0
    return np.r_[2 * centres[0] - mids[0], mids, 2 * centres[-1] - mids[-1]]


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------

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
    fig = _new_figure((4.3 * len(shown), 4.3))
    axes = fig.subplots(1, len(shown), sharex=True, squeeze=False)[0]

    all_x = []
    notes: set[str] = set()
    for index, (run_label, run) in enumerate(history.items()):
        if x in run:
            xs = np.asarray(run[x], dtype=np.float64).reshape(-1)
        elif x == "epoch":
            xs = np.arange(len(np.asarray(run[shown[0]]).reshape(-1)), dtype=np.float64)
        else:
            raise KeyError(f"run {run_label!r} has no {x!r} values")
        all_x.append(xs)
        for ax, metric in zip(axes, shown):
            if metric not in run:
                continue
            ys = np.asarray(run[metric], dtype=np.float64).reshape(-1)
            if ys.shape != xs.shape:
                raise ValueError(f"run {run_label!r}: {metric} has {ys.size} values, "
                                 f"{x} has {xs.size}")
            colour = f"C{index % 10}"
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
                hollow = np.asarray(run[f"{metric}_extrapolated"],
                                    dtype=np.float64).reshape(-1) == 1
                if (hollow & np.isfinite(ys)).any():
                    notes.add("extrapolated")
            ax.plot(xs[~hollow], ys[~hollow], "o", markersize=3.5, color=colour)
            ax.plot(xs[hollow], ys[hollow], "o", markersize=5, markerfacecolor="white",
                    markeredgecolor=colour)
            if f"{metric}_bound" in run and f"{metric}_status" in run:
                # Runs often share a bound (the same probe): dodge so each stays visible.
                dodge = index - (len(history) - 1) / 2
                shifted = xs * 1.03**dodge if x == "train_loss" else xs + 0.08 * dodge
                notes |= _xi_bounds(ax, shifted, ys, run, metric, colour)

    xs_all = np.concatenate(all_x) if all_x else np.array([])
    xs_all = xs_all[np.isfinite(xs_all)]
    for ax, metric in zip(axes, shown):
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
    if x == "train_loss":
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
    axes[0].legend(fontsize=8)
    if notes:
        handles = [_NOTE_HANDLES[note]() for note in sorted(notes)]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 2),
                   fontsize=8, frameon=False)
    if title is not None:
        fig.suptitle(title)
    return _finish(fig, path)


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


# --------------------------------------------------------------------------------------------
# Neighbourhood stiffness map
# --------------------------------------------------------------------------------------------


def _as_grid(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(xs, ys, ix, iy) when the points are exactly a full rectangular grid, else None."""
    xs, ix = np.unique(x[:, 0], return_inverse=True)
    ys, iy = np.unique(x[:, 1], return_inverse=True)
    n = x.shape[0]
    if xs.size < 2 or ys.size < 2 or xs.size * ys.size != n:
        return None
    if np.unique(iy * xs.size + ix).size != n:
        return None
    return xs, ys, ix, iy


def neighbourhood_map(
    x: Any,
    values: Any,
    labels: Any = None,
    boundary: Any = None,
    radius: float | None = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    vmax: float | None = None,
) -> Figure:
    """Neighbourhood stiffness over a 2-D input plane (Walker's boundary picture).

    A full rectangular grid of points is drawn as cells (pcolormesh), anything else as a
    scatter. Low (blue) values mark where the model's learned class boundary lies.

    Args:
        x: [N, 2] input points.
        values: [N] neighbourhood stiffness of each point; NaN (no neighbours) drawn grey.
        labels: Optional [N] true class labels: dotted contour between class regions on a grid,
            one marker shape per class on a scatter.
        boundary: Optional true boundary: an [M, 2] polyline or a list of them (black lines).
        radius: Neighbourhood radius; shown in the title and as a scale circle.
        path: Where to save the figure (.png/.pdf/.svg), or None.
        title: Axes title; default "Neighbourhood stiffness".
        vmax: Fixed colour half-range; default the largest |value|.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> g = np.linspace(-1, 1, 10)
        >>> x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        >>> fig = neighbourhood_map(x, x[:, 0] * x[:, 1], labels=x[:, 0] > 0, radius=0.1)
        >>> len(fig.axes[0].collections) > 0
        True
    """
    x = np.asarray(x, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] != values.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need x [N, 2] and values [N], N > 0; got {x.shape}, {values.shape}")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {x.shape[0]} points")

    fig = _new_figure((6.6, 5.4))
    ax = fig.add_subplot()
    cmap, norm = diverging_cmap(), symmetric_norm(values, vmax)
    handles = []
    grid = _as_grid(x)
    if grid is not None:
        xs, ys, ix, iy = grid
        Z = np.full((ys.size, xs.size), np.nan)
        Z[iy, ix] = values
        ax.set_facecolor(NAN_COLOUR)  # Masked (NaN) cells are left undrawn: grey shows through.
        mappable = ax.pcolormesh(_edges_from_centres(xs), _edges_from_centres(ys),
                                 np.ma.masked_invalid(Z), cmap=cmap, norm=norm, shading="flat")
        if labels is not None:
            classes, codes = np.unique(labels, return_inverse=True)
            if classes.size > 1:
                L = np.zeros((ys.size, xs.size))
                L[iy, ix] = codes
                ax.contour(xs, ys, L, levels=np.arange(classes.size - 1) + 0.5,
                           colors="0.15", linestyles=":", linewidths=1.2)
                handles.append(Line2D([], [], color="0.15", linestyle=":",
                                      label="class regions (labels)"))
    else:
        if labels is None:
            mappable = ax.scatter(x[:, 0], x[:, 1], c=values, cmap=cmap, norm=norm, s=22,
                                  plotnonfinite=True, edgecolors="none")
        else:
            classes = np.unique(labels)
            for k, cls in enumerate(classes):
                mask = labels == cls
                mappable = ax.scatter(x[mask, 0], x[mask, 1], c=values[mask], cmap=cmap,
                                      norm=norm, s=26, marker=_MARKERS[k % len(_MARKERS)],
                                      plotnonfinite=True, edgecolors="0.2", linewidths=0.4)
                handles.append(Line2D([], [], marker=_MARKERS[k % len(_MARKERS)],
                                      linestyle="none", markerfacecolor="white",
                                      markeredgecolor="0.2", label=f"class {cls}"))

    if boundary is not None:
        first = np.asarray(boundary[0]) if len(boundary) else None
        polylines = [boundary] if (first is not None and first.ndim == 1) else list(boundary)
        for line in polylines:
            line = np.asarray(line, dtype=np.float64)
            if line.ndim != 2 or line.shape[1] != 2:
                raise ValueError(f"a boundary polyline must be [M, 2], got {line.shape}")
            ax.plot(line[:, 0], line[:, 1], color="black", linewidth=1.6)
        handles.append(Line2D([], [], color="black", linewidth=1.6, label="true boundary"))

    ax.set_aspect("equal")
    ax.set_xlim(*_padded(x[:, 0]))
    ax.set_ylim(*_padded(x[:, 1]))
    if radius is not None and radius > 0:
        # A circle of the neighbourhood radius in the lower-left corner, for scale.
        x0, y0 = ax.get_xlim()[0], ax.get_ylim()[0]
        ax.add_patch(Circle((x0 + 1.4 * radius, y0 + 1.4 * radius), radius, fill=False,
                            edgecolor="black", linewidth=1.0))
        handles.append(Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="black",
                              linestyle="none", label=f"radius r = {radius:g}"))
    fig.colorbar(mappable, ax=ax, shrink=0.9, label="mean cosine stiffness to neighbours")
    if handles:
        # Below the plot: over the map it would hide exactly the region of interest.
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                   fontsize=8, frameon=False)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is None:
        title = "Neighbourhood stiffness" + (f" (r = {radius:g})" if radius else "")
    ax.set_title(title)
    return _finish(fig, path)


def _padded(v: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    pad = 0.04 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


# --------------------------------------------------------------------------------------------
# Layer-wise stiffness
# --------------------------------------------------------------------------------------------


def layerwise_curves(
    results: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike | None = None,
    title: str | None = None,
    ylabel: str = "stiffness",
) -> Figure:
    """Stiffness through the layers, one line per condition (model, activation, trained...).

    Args:
        results: Condition label -> ordered mapping layer name -> value; or condition label ->
            metric (e.g. "within", "between") -> ordered mapping layer name -> value, drawn as
            one panel per metric. None/NaN values leave gaps. When every condition has the same
            layer names they label the ticks; otherwise ticks are layer indices.
        path: Where to save the figure (.png/.pdf/.svg), or None.
        title: Figure title.
        ylabel: y-axis label (the metric name is used with metric panels).

    Returns:
        The figure.

    Example:
        >>> fig = layerwise_curves({"trained": {"dense": 0.4, "dense_1": 0.2, "out": 0.1},
        ...                         "untrained": {"dense": 0.1, "dense_1": 0.0, "out": 0.0}})
        >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
        ['dense', 'dense_1', 'out']
    """
    if not results:
        raise ValueError("results is empty")
    nested = any(
        isinstance(v, Mapping) for per in results.values() for v in per.values()
    )
    # Normalise to metric -> condition -> layer mapping.
    panels: dict[str | None, dict[str, Mapping[str, Any]]] = {}
    for condition, per in results.items():
        if nested:
            for metric, layers in per.items():
                panels.setdefault(str(metric), {})[str(condition)] = layers
        else:
            panels.setdefault(None, {})[str(condition)] = per

    fig = _new_figure((max(5.0, 4.8 * len(panels)), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = {str(c): f"C{i % 10}" for i, c in enumerate(results)}
    for ax, (metric, conditions) in zip(axes, panels.items()):
        name_lists = [list(layers) for layers in conditions.values()]
        for condition, layers in conditions.items():
            ys = np.array([np.nan if v is None else float(v) for v in layers.values()])
            ax.plot(np.arange(ys.size), ys, "o-", markersize=4, color=colours[condition],
                    label=condition)
        longest = max(len(names) for names in name_lists)
        positions = np.arange(longest)
        if all(names == name_lists[0] for names in name_lists):
            labels = [str(n) for n in name_lists[0]]
            long_names = max(len(s) for s in labels) > 6 or longest > 8
            ax.set_xticks(positions, labels=labels, rotation=30 if long_names else 0,
                          ha="right" if long_names else "center", fontsize=8)
            ax.set_xlabel("layer")
        else:
            ax.set_xticks(positions, labels=[str(i + 1) for i in positions])
            ax.set_xlabel("layer (index)")
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.grid(alpha=0.3)
        ax.set_ylabel(ylabel if metric is None else f"{metric} {ylabel}")
        if metric is not None:
            ax.set_title(metric.capitalize(), fontsize=10)
    axes[0].legend(fontsize=8)
    if title is not None:
        fig.suptitle(title)
    return _finish(fig, path)
