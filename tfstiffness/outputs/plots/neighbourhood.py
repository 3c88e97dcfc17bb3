"""Neighbourhood stiffness over a 2-D input plane (Walker's boundary picture): cells on a full
grid, markers elsewhere, with the true boundary and the neighbourhood radius."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from tfstiffness.outputs.plots.style import (
    NAN_COLOUR,
    diverging_cmap,
    edges_from_centres,
    finish,
    new_figure,
    padded_range,
    symmetric_norm,
)

# Class markers for scattered neighbourhood maps: shape carries the class, colour the stiffness.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


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

    fig = new_figure((6.6, 5.4))
    ax = fig.add_subplot()
    cmap, norm = diverging_cmap(), symmetric_norm(values, vmax)
    grid = _as_grid(x)
    if grid is not None:
        mappable, handles = _draw_cells(ax, grid, values, labels, cmap, norm)
    else:
        mappable, handles = _draw_points(ax, x, values, labels, cmap, norm)

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
    ax.set_xlim(*padded_range(x[:, 0]))
    ax.set_ylim(*padded_range(x[:, 1]))
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
    return finish(fig, path)


def _draw_cells(ax, grid: tuple[np.ndarray, ...], values: np.ndarray, labels: Any, cmap,
                norm) -> tuple[Any, list[Line2D]]:
    """Values on a full grid as cells, with a dotted contour between the labels' class
    regions; returns the mappable and the legend handles."""
    xs, ys, ix, iy = grid
    handles = []
    Z = np.full((ys.size, xs.size), np.nan)
    Z[iy, ix] = values
    ax.set_facecolor(NAN_COLOUR)  # Masked (NaN) cells are left undrawn: grey shows through.
    mappable = ax.pcolormesh(edges_from_centres(xs), edges_from_centres(ys),
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
    return mappable, handles


def _draw_points(ax, x: np.ndarray, values: np.ndarray, labels: Any, cmap,
                 norm) -> tuple[Any, list[Line2D]]:
    """Values at scattered points, one marker shape per class with labels; returns the
    mappable and the legend handles."""
    handles = []
    if labels is None:
        mappable = ax.scatter(x[:, 0], x[:, 1], c=values, cmap=cmap, norm=norm, s=22,
                              plotnonfinite=True, edgecolors="none")
        return mappable, handles
    classes = np.unique(labels)
    for k, cls in enumerate(classes):
        mask = labels == cls
        mappable = ax.scatter(x[mask, 0], x[mask, 1], c=values[mask], cmap=cmap,
                              norm=norm, s=26, marker=_MARKERS[k % len(_MARKERS)],
                              plotnonfinite=True, edgecolors="0.2", linewidths=0.4)
        handles.append(Line2D([], [], marker=_MARKERS[k % len(_MARKERS)],
                              linestyle="none", markerfacecolor="white",
                              markeredgecolor="0.2", label=f"class {cls}"))
    return mappable, handles
