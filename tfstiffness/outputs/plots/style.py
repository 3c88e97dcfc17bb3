"""What every figure of `plots` shares: a pyplot-free figure, the stiffness colours, saving.

A figure is a `matplotlib.figure.Figure` with an Agg canvas attached directly, so no global
pyplot state or backend is touched. `save_figure` writes it atomically (format from the suffix,
raster at `DPI`). Stiffness is drawn with `diverging_cmap` under `symmetric_norm`: blue below
zero, red above, NaN light grey.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure

from tfstiffness.outputs.atomic import atomic_write

DPI = 150
NAN_COLOUR = "lightgrey"
_CMAP_NAME = "RdBu_r"
_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout figure of `figsize` inches with its own Agg canvas (no pyplot)."""
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
        >>> import tempfile
        >>> fig = new_figure((2.0, 2.0))
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


def finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """`fig`, saved first to `path` when one is given (what every figure function returns)."""
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


def field(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping key `name` of a duck-typed result."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)



def edges_from_centres(centres: np.ndarray) -> np.ndarray:
    """Bin edges around `centres`: midpoints inside, the outer edges mirrored (a lone bin is
    1 wide)."""
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = (centres[1:] + centres[:-1]) / 2.0
    return np.r_[2 * centres[0] - mids[0], mids, 2 * centres[-1] - mids[-1]]



def padded_range(v: np.ndarray) -> tuple[float, float]:
    """Axis limits around the finite values of `v`, 4% of their range beyond each end."""
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    pad = 0.04 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad

