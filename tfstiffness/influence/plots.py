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
from matplotlib.patches import Rectangle

from tfstiffness.influence.tracin import TracInResult
from tfstiffness.measures.neighbourhood import roc_auc
from tfstiffness.outputs.plots import save_figure

__all__ = ["flipped_label_detection", "highest_self_influence", "proponents_opponents"]

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
    test_ids: Sequence[int] | None = None,
    y_original: Any = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """One row per test example: the example, its k proponents, then its k opponents.

    Each training example is titled with its index, label and TracIn score; proponents are
    framed red, opponents blue. A training label that differs from `y_original` (a flipped
    label) is marked "(was 5)" after its score.

    Args:
        result: a `TracInResult` with scores or a streamed top-k (at least k).
        x, y: the training inputs (one array [N, ...]) and labels of the result.
        x_test, y_test: the test inputs and labels.
        test_indices: test examples to show (default: the first min(4, M)).
        k: proponents and opponents per row.
        class_names: names of the labels (default: the label numbers).
        test_ids: the number shown for each test example (default: its index in `x_test`),
            e.g. its index in the test split when `x_test` is a probe drawn from it.
        y_original: [N] labels before any were flipped (default: `y`).
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
        >>> fig.axes[0].texts[0].get_text().splitlines()  # Panel titles, row by row.
        ['test #0', 'label 0']
    """
    x, x_test = np.asarray(x), np.asarray(x_test)
    y, y_test = _labels(y, len(x), "y"), _labels(y_test, len(x_test), "y_test")
    y_original = y if y_original is None else _labels(y_original, len(x), "y_original")
    if test_ids is not None and len(test_ids) != len(x_test):
        raise ValueError(f"test_ids: expected {len(x_test)} (one per test example), got "
                         f"{len(test_ids)}.")
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

    def was(i: int) -> str:  # A flipped label's original one.
        return f" (was {name(y_original[i])})" if y_original[i] != y[i] else ""

    # Columns: the test example, a gap, then k proponents and k opponents.
    board = _Board(len(test_indices), [0.0, 0.35] + [0.0] * (2 * k - 1))
    for row, j in enumerate(test_indices):
        shown = j if test_ids is None else int(test_ids[j])
        board.panel(row, 0, draw_test, x_test[j], _TEST,
                    f"test #{shown}\nlabel {name(y_test[j])}", fontsize=8)
        cells = [(i, s, _PROPONENT) for i, s in zip(proponents[j], proponent_scores[j])]
        cells += [(i, s, _OPPONENT) for i, s in zip(opponents[j], opponent_scores[j])]
        for col, (i, score, colour) in enumerate(cells, start=1):
            board.panel(row, col, draw_train, x[i], colour,
                        f"#{i} label {name(y[i])}\n{score:+.3g}{was(i)}")
    fig = board.finish(f"TracIn ({result.kind}, {result.num_checkpoints} checkpoints): "
                       f"proponents (red, highest first) and opponents (blue, lowest first)")
    if path is not None:
        save_figure(fig, path)
    return fig


def highest_self_influence(
    self_influence: Any,
    x: np.ndarray,
    y: Any,
    *,
    count: int = 16,
    y_original: Any = None,
    class_names: Sequence[str] | None = None,
    columns: int = 8,
    path: str | os.PathLike | None = None,
) -> Figure:
    """The training examples with the highest self-influence, highest first.

    Each is titled with its rank, index, label (and, when it differs from `y_original`, the
    label it was flipped from, in red) and its self-influence.

    Args:
        self_influence: [N] self-influence of each training example.
        x, y: the training inputs (one array [N, ...]) and the labels trained on.
        count: how many to show (at most N).
        y_original: [N] labels before any were flipped (default: `y`).
        class_names: names of the labels (default: the label numbers).
        columns: examples per row.
        path: also save the figure there.

    Returns:
        The figure.

    Example:
        >>> import numpy as np
        >>> x, y = np.random.rand(10, 6, 6), np.arange(10) % 3
        >>> fig = highest_self_influence(np.arange(10.0), x, y, count=4)
        >>> [t.get_text().split("\\n")[0] for t in fig.axes[0].texts][:2]
        ['1. #9 label 0', '2. #8 label 2']
    """
    x = np.asarray(x)
    scores = np.asarray(self_influence, np.float64)
    if scores.shape != (len(x),):
        raise ValueError(f"self_influence: expected [{len(x)}] (one per example of x), got "
                         f"shape {scores.shape}.")
    y = _labels(y, len(x), "y")
    y_original = y if y_original is None else _labels(y_original, len(x), "y_original")
    if not isinstance(count, (int, np.integer)) or not 1 <= count <= len(x):
        raise ValueError(f"count: expected an integer in [1, {len(x)}], got {count!r}.")
    draw = _drawer(x, "x")

    def name(label: int) -> str:
        return str(class_names[label]) if class_names is not None else str(label)

    ranking = np.argsort(-scores, kind="stable")[:count]
    columns = min(columns, count)
    rows = -(-count // columns)
    board = _Board(rows, [0.0] * columns)
    for rank, i in enumerate(ranking):
        flipped = y_original[i] != y[i]
        colour = _PROPONENT if flipped else _TEST
        was = f" (was {name(y_original[i])})" if flipped else ""
        board.panel(rank // columns, rank % columns, draw, x[i], colour,
                    f"{rank + 1}. #{i} label {name(y[i])}{was}\n{scores[i]:.3g}")
    fig = board.finish("Highest self-influence (flipped labels in red)"
                       if np.any(y_original != y) else "Highest self-influence")
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


class _Board:
    """Small framed panels under two-line titles, placed in inches on ONE axes that covers
    the figure, with a title line on top.

    An Axes per panel costs about 25 ms to create and draw, 3 s for a page of 10 x 11
    examples; one axes for all of them draws such a page in a fraction of that.

    Args:
        rows: rows of panels.
        gaps: extra space (inches) before each column: one entry per column.
    """

    PANEL, TITLE, TOP, BOTTOM, SIDE, SPACE = 1.2, 0.42, 0.3, 0.08, 0.1, 0.25  # inches

    def __init__(self, rows: int, gaps: Sequence[float]):
        self.lefts = []
        left = self.SIDE
        for gap in gaps:
            left += gap
            self.lefts.append(left)
            left += self.PANEL + self.SPACE
        self.width = left - self.SPACE + self.SIDE
        self.height = self.TOP + rows * (self.TITLE + self.PANEL) + self.BOTTOM
        self.fig = Figure(figsize=(self.width, self.height))
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()

    def panel(self, row: int, column: int, draw, example: np.ndarray, colour: str,
              title: str, fontsize: float = 7) -> None:
        """Draws `example` with `draw` (from `_drawer`) in a frame, `title` above it."""
        left = self.lefts[column]
        top = self.TOP + row * (self.TITLE + self.PANEL) + self.TITLE
        draw(self.ax, example, left, top, self.PANEL, colour)
        self.ax.add_patch(Rectangle((left, top), self.PANEL, self.PANEL, fill=False,
                                    edgecolor=colour, linewidth=1.5))
        self.ax.text(left + self.PANEL / 2, top - 0.04, title, ha="center", va="bottom",
                     fontsize=fontsize, color=colour)

    def finish(self, title: str) -> Figure:
        """The figure, with `title` on top (y grows downwards, in inches)."""
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(self.height, 0)
        self.ax.set_aspect("auto")
        self.ax.text(self.width / 2, 0.08, title, ha="center", va="top", fontsize=9)
        return self.fig


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(1)
    y = y.reshape(-1)
    if len(y) != n:
        raise ValueError(f"{name}: expected {n} labels, got {len(y)}.")
    return y.astype(np.int64)


def _drawer(x: np.ndarray, name: str):
    """A function `draw(ax, example, left, top, size, colour)` drawing one example of `x` in
    the square of `size` whose top-left corner is (left, top) (y grows downwards), each
    example scaled to its own range: a line for a sequence, an image (aspect kept)."""
    shape = x.shape[1:]
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        def draw(ax, example, left, top, size, colour):
            values = _unit_range(np.ravel(example))
            steps = np.linspace(0.05, 0.95, len(values)) if len(values) > 1 else np.r_[0.5]
            ax.plot(left + size * steps, top + size * (0.92 - 0.84 * values), color=colour,
                    linewidth=0.9)
        return draw
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3)):
        def draw(ax, example, left, top, size, colour):
            image = _unit_range(example)
            if image.ndim == 3 and image.shape[2] == 1:
                image = image[..., 0]
            height, width = image.shape[:2]
            scale = size / max(height, width)
            x0 = left + (size - width * scale) / 2
            y0 = top + (size - height * scale) / 2
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0,
                      interpolation="nearest",
                      extent=(x0, x0 + width * scale, y0 + height * scale, y0))
        return draw
    raise ValueError(f"{name}: expected images [N, H, W(, 1 or 3)] or sequences [N, L(, 1)], "
                     f"got examples of shape {shape}.")


def _unit_range(values: Any) -> np.ndarray:
    """`values` scaled to [0, 1] (a constant example: all 0)."""
    values = np.asarray(values, np.float64)
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)
