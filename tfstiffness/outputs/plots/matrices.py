"""Heatmaps of class stiffness: the [K, K] class matrix (grouped by super-class when given)
and the super-class matrix with its values written in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tfstiffness.outputs.plots.style import (
    NAN_COLOUR,
    diverging_cmap,
    finish,
    new_figure,
    symmetric_norm,
)

# Above this many classes, per-class tick labels collide; label blocks or let matplotlib choose.
_MAX_NAMED_TICKS = 40


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
    fig = new_figure((side + 1.2, side))
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
    return finish(fig, path)


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
    fig = new_figure((side + 1.5, side))
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
    return finish(fig, path)

