"""Figures of TracIn results: each test example's proponents and opponents, and how fast
self-influence finds flipped labels.

Matplotlib only through `Figure` (no pyplot), saved with `plots.save_figure` when `path` is
given. Examples are drawn as images ([H, W] or [H, W, C] with C = 1 or 3, each scaled to its
own range) or as sequences ([L] or [L, 1], a line).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfstiffness.influence import TracInResult
from tfstiffness.neighbourhood import roc_auc
from tfstiffness.plots import save_figure

__all__ = ["flipped_label_detection", "proponents_opponents"]

_PROPONENT, _OPPONENT, _TEST = "tab:red", "tab:blue", "black"


def proponents_opponents(
    result: TracInResult,
    x: np.ndarray,
    y: Any,
    x_test: np.ndarray,
    y_test: Any,
    test_indices: Sequence[int] | None = None,
    *,
    k: int = 4,
    class_names: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """One row per test example: the example, its k proponents, then its k opponents.

    Each training example is titled with its index, label and TracIn score; proponents are
    framed red, opponents blue.

    Args:
        result: a `TracInResult` with scores or a streamed top-k (at least k).
        x, y: the training inputs (one array [N, ...]) and labels of the result.
        x_test, y_test: the test inputs and labels.
        test_indices: test examples to show (default: the first min(4, M)).
        k: proponents and opponents per row.
        class_names: names of the labels (default: the label numbers).
        path: also save the figure there (.png, .pdf or .svg).

    Returns:
        The figure.

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> from tfstiffness import influence_plots
        >>> model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2)])
        >>> x, y = np.random.rand(12, 8, 8).astype("float32"), np.arange(12) % 2
        >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> result = tfs.tracin([model], x, y, x[:2], y[:2], loss=loss, top_k=3)
        >>> fig = influence_plots.proponents_opponents(result, x, y, x[:2], y[:2], k=3)
        >>> len(fig.axes)
        14
    """
    x, x_test = np.asarray(x), np.asarray(x_test)
    y, y_test = _labels(y, len(x), "y"), _labels(y_test, len(x_test), "y_test")
    draw_train, draw_test = _drawer(x, "x"), _drawer(x_test, "x_test")
    proponents, proponent_scores, opponents, opponent_scores = result.top(k)
    if len(proponents) != len(x_test):
        raise ValueError(f"x_test: the result has {len(proponents)} test examples, got "
                         f"{len(x_test)}.")
    if test_indices is None:
        test_indices = range(min(4, len(x_test)))
    test_indices = [int(j) for j in test_indices]
    for j in test_indices:
        if not 0 <= j < len(x_test):
            raise ValueError(f"test_indices: {j} is outside [0, {len(x_test)}).")

    def name(label: int) -> str:
        return str(class_names[label]) if class_names is not None else str(label)

    columns = 1 + 2 * k
    fig = Figure(figsize=(1.45 * columns + 0.4, 1.75 * len(test_indices)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(test_indices), columns + 1,
                            width_ratios=[1, 0.25] + [1] * (2 * k))
    for row, j in enumerate(test_indices):
        ax = fig.add_subplot(grid[row, 0])
        draw_test(ax, x_test[j], _TEST)
        ax.set_title(f"test #{j}\nlabel {name(y_test[j])}", fontsize=8)
        cells = [(i, s, _PROPONENT) for i, s in zip(proponents[j], proponent_scores[j])]
        cells += [(i, s, _OPPONENT) for i, s in zip(opponents[j], opponent_scores[j])]
        for col, (i, score, colour) in enumerate(cells):
            ax = fig.add_subplot(grid[row, 2 + col])
            draw_train(ax, x[i], colour)
            ax.set_title(f"#{i} label {name(y[i])}\n{score:+.3g}", fontsize=7, color=colour)
    fig.suptitle(f"TracIn ({result.kind}, {result.num_checkpoints} checkpoints): "
                 f"proponents (red, highest first) and opponents (blue, lowest first)",
                 fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def flipped_label_detection(
    self_influence: Any,
    flipped: Any,
    baseline: Any = None,
    *,
    baseline_label: str = "final loss",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Share of flipped labels found against the share of training data checked, checking
    examples by decreasing self-influence (Pruthi et al. 2020, figure 2).

    Args:
        self_influence: [N] self-influence of each training example.
        flipped: [N] bool, the examples whose label was flipped.
        baseline: optional [N] other score (e.g. the final per-example loss), drawn too.
        baseline_label: its legend entry.
        path: also save the figure there.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> flipped = np.arange(100) < 10
        >>> fig = flipped_label_detection(flipped + np.random.rand(100), flipped)
        >>> fig.axes[0].get_xlabel()
        'share of training data checked'
    """
    flipped = np.asarray(flipped, bool)
    fig = Figure(figsize=(4.6, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    share = np.arange(len(flipped) + 1) / len(flipped)
    curves = [("self-influence", self_influence, "tab:red")]
    if baseline is not None:
        curves.append((baseline_label, baseline, "tab:grey"))
    for label, scores, colour in curves:
        scores = np.asarray(scores, np.float64)
        if scores.shape != flipped.shape:
            raise ValueError(f"{label}: expected {flipped.shape} scores, got {scores.shape}.")
        order = np.argsort(-scores, kind="stable")
        found = np.r_[0, np.cumsum(flipped[order])] / max(flipped.sum(), 1)
        ax.plot(share, found, color=colour,
                label=f"{label} (AUC {roc_auc(scores, flipped):.3f})")
    ax.plot(share, share, color="lightgrey", linestyle="--", label="random")
    ax.set_xlabel("share of training data checked")
    ax.set_ylabel("share of flipped labels found")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{int(flipped.sum())} of {len(flipped)} labels flipped", fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(1)
    y = y.reshape(-1)
    if len(y) != n:
        raise ValueError(f"{name}: expected {n} labels, got {len(y)}.")
    return y.astype(np.int64)


def _drawer(x: np.ndarray, name: str):
    """A function drawing one example of `x` into an axes, framed in a colour."""
    shape = x.shape[1:]
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        def draw(ax, example, colour):
            ax.plot(np.ravel(example), color=colour, linewidth=0.9)
            ax.set_xticks([])
            ax.set_yticks([])
            _frame(ax, colour)
        return draw
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3)):
        def draw(ax, example, colour):
            image = np.asarray(example, np.float64)
            low, high = image.min(), image.max()
            image = (image - low) / (high - low) if high > low else np.zeros_like(image)
            if image.ndim == 3 and image.shape[2] == 1:
                image = image[..., 0]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            _frame(ax, colour)
        return draw
    raise ValueError(f"{name}: expected images [N, H, W(, 1 or 3)] or sequences [N, L(, 1)], "
                     f"got examples of shape {shape}.")


def _frame(ax, colour: str) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(1.5)
