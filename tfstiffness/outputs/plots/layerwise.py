"""Stiffness through the layers, one line per condition (model, activation, trained or not)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tfstiffness.outputs.plots.style import finish, new_figure


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

    fig = new_figure((max(5.0, 4.8 * len(panels)), 4.2))
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
    return finish(fig, path)

