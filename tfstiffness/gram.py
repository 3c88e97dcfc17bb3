"""`gradient_gram`: exact per-example gradient Gram matrices of a Keras model.

Every method produces, block by block, *factors* of the per-example gradients (see
`_factors`); one tiling loop (`_tiling`) turns pairs of blocks into Gram blocks. Memory beyond
the result is bounded by a factor budget plus a few blocks, whatever N is.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import _tiling, _validation
from tfstiffness._generic import PerExampleGradients, vmap_unsafe_layers
from tfstiffness._ghost import GhostFactors
from tfstiffness._losses import prepare_labels, resolve_loss

METHODS = ("auto", "ghost", "vmap", "jacobian")
# Row blocks' factors held at once (a band): when all fit, each block is computed once;
# beyond it, column blocks are recomputed once per band so memory stays bounded.
_CACHE_BYTES = 1 << 30
_GENERIC_BLOCK_BYTES = 256 << 20
_GHOST_BLOCK = 512
# tape.jacobian vectorises the block's backward pass once per example: its time per example
# and its memory grow with the block (500 CNN examples at once needed > 23 GB).
_JACOBIAN_BLOCK = 16

FactorSource = _tiling.FactorSource


@dataclass
class GradientGram:
    """Gram matrix of per-example loss gradients, `total[i, j] = g_i . g_j`.

    Attributes:
        total: [N, M] float32; M = N when one set was given.
        by_layer: layer name -> [N, M] block over that layer's parameters (when requested);
            the blocks sum to `total`.
        sq_norms: [N] squared gradient norm of each example of the first set.
        sq_norms2: [M] the same for the second set (equal to `sq_norms` for one set).
        cross: True when the columns are a second set of examples.
        method: the method that computed it ("ghost", "vmap" or "jacobian").
        fallback_layers: with the ghost method, layers without a structured rule, whose
            variables went through the generic per-example path.
        layer_sq_norms, layer_sq_norms2: layer name -> each example's squared gradient norm
            over that layer's parameters, for each set (when `by_layer`).
    """

    total: np.ndarray
    sq_norms: np.ndarray
    sq_norms2: np.ndarray
    cross: bool
    method: str
    by_layer: dict[str, np.ndarray] = field(default_factory=dict)
    fallback_layers: tuple[str, ...] = ()
    layer_sq_norms: dict[str, np.ndarray] = field(default_factory=dict)
    layer_sq_norms2: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_zero_gradient(self) -> int:
        """Examples (in either set) whose gradient is exactly zero."""
        count = int(np.sum(self.sq_norms == 0))
        return count + (int(np.sum(self.sq_norms2 == 0)) if self.cross else 0)


def gradient_gram(
    model: keras.Model,
    x: Any,
    y: Any,
    loss: Any = None,
    x2: Any = None,
    y2: Any = None,
    by_layer: bool = False,
    method: str = "auto",
    batch_size: int | None = None,
    verbose: bool | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> GradientGram:
    """Exact Gram matrix of per-example loss gradients w.r.t. the trainable parameters.

    Forward passes run in inference mode (`training=False`), so examples never interact.

    Args:
        model: a built or unbuilt Keras model (Sequential, functional, subclassed, nested).
        x: inputs [N, ...]; y: labels (integers, one-hot, or what `loss` expects).
        loss: a `keras.losses.Loss`, a loss name, a callable `(y_true, y_pred) -> [batch]`
            per-example loss, or None for the compiled model's loss.
        x2, y2: an optional second set; the result is then the [N, M] cross Gram.
        by_layer: also return each layer's block (they sum to `total`).
        method: "auto" (the fastest exact path), "ghost" (structured per-layer rules),
            "vmap" (`tf.vectorized_map` of a per-example tape) or "jacobian"
            (`tape.jacobian` of the per-example losses). All agree to float32 round-off.
        batch_size: examples per block; by default chosen from memory.
        verbose: show progress on stderr; by default once a run passes 5 seconds.
        strategy: a `tf.distribute.Strategy` whose replicas share the independent pairs of
            blocks (each replica computes both blocks' factors and their Gram block); None
            computes on the default device.

    Returns:
        A `GradientGram`.

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x, y = np.random.rand(8, 4).astype("float32"), np.arange(8) % 3
        >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> gram = tfs.gradient_gram(model, x, y, loss=loss)
        >>> gram.total.shape
        (8, 8)
    """
    run = _setup(model, x, y, loss, x2, y2, method, batch_size, strategy)
    total, layers, sq1, sq2 = _assemble(run, by_layer, verbose)
    return GradientGram(
        total=total, by_layer=layers, sq_norms=sum(sq1.values()),
        sq_norms2=sum(sq2.values()), cross=run.x2 is not None, method=run.prepared.method,
        fallback_layers=getattr(run.prepared.source, "fallback_layers", ()),
        layer_sq_norms=sq1 if by_layer else {},
        layer_sq_norms2=sq2 if by_layer else {})


@dataclass
class _Run:
    """Checked inputs (labels as the loss expects them) and what computes their factors."""

    x: np.ndarray
    y: np.ndarray
    x2: np.ndarray | None
    y2: np.ndarray | None
    prepared: _Prepared
    block: int
    strategy: tf.distribute.Strategy | None

    def blocks(self, done: frozenset = frozenset()):
        return _tiling.gram_blocks(self.prepared.source, self.x, self.y, self.x2, self.y2,
                                   block=self.block, cache_bytes=_CACHE_BYTES, done=done,
                                   strategy=self.strategy)


def _setup(model, x, y, loss, x2, y2, method, batch_size, strategy) -> _Run:
    """Validates everything before any heavy work; shared by every entry point."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy: expected a tf.distribute.Strategy or None, got "
                        f"{type(strategy).__name__}.")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}.")
    x = _validation.as_inputs(x, "x")
    _validation.check_lengths(x, y, "x", "y")
    if (x2 is None) != (y2 is None):
        raise ValueError("x2, y2: give both (a second set) or neither.")
    if x2 is not None:
        x2 = _validation.as_inputs(x2, "x2")
        _validation.check_lengths(x2, y2, "x2", "y2")
    prepared = _prepare(model, loss, method, x)
    y = prepare_labels(y, prepared.label_kind, prepared.num_outputs, "y")
    if x2 is not None:
        _validation.check_input_shape(model, x2, "x2")
        y2 = prepare_labels(y2, prepared.label_kind, prepared.num_outputs, "y2")
    if not prepared.connected_checked:
        _validation.check_connected(model, prepared.loss_fn, x, y)
        prepared.connected_checked = True
    block = batch_size or _default_block(model, prepared.method, len(x))
    return _Run(x, y, x2, y2, prepared, block, strategy)


@dataclass
class _Prepared:
    """What one (model, loss, method, variables, input shape) needs: checked and traced once."""

    loss_fn: Callable
    label_kind: str
    num_outputs: int | None
    source: FactorSource
    method: str
    connected_checked: bool = False


# model -> {key: _Prepared}, so traced functions and model checks are reused across calls.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepare(model: keras.Model, loss: Any, method: str, x: np.ndarray) -> _Prepared:
    loss_fn, label_kind = resolve_loss(loss, model)
    _validation.check_input_shape(model, x, "x")

    def key():  # a changed loss, input shape or set of trainable variables needs a new trace
        return (id(model.loss if loss is None else loss), method, x.shape[1:], x.dtype.str,
                tuple(id(v) for v in model.trainable_variables))

    per_model = _PREPARED.setdefault(model, {})
    prepared = per_model.get(key())
    if prepared is None:
        num_outputs = _validation.probe_model(model, x, "x")  # builds an unbuilt model
        source, method_used = _factor_source(model, loss_fn, method)
        prepared = per_model[key()] = _Prepared(loss_fn, label_kind, num_outputs, source,
                                                method_used)
    return prepared


def _factor_source(model, loss_fn, method) -> tuple[FactorSource, str]:
    unsafe = vmap_unsafe_layers(model)
    if method == "vmap" and unsafe:
        raise ValueError(
            f"method: 'vmap' would crash the process through layer(s) {unsafe} with oneDNN "
            "enabled (see BUILD_NOTES.md); use method='ghost' or 'jacobian', or set "
            "TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow."
        )
    if method in ("vmap", "jacobian"):
        grads = PerExampleGradients(model, loss_fn, model.trainable_variables, method)
        return (lambda xb, yb: {k: [f] for k, f in grads(xb, yb).items()}), method
    generic = "jacobian" if unsafe else "vmap"
    return GhostFactors(model, loss_fn, generic_method=generic), "ghost"


def _default_block(model: keras.Model, method: str, n: int) -> int:
    if method == "ghost":
        return min(n, _GHOST_BLOCK)
    per_example = 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    block = _GENERIC_BLOCK_BYTES // per_example
    return max(1, min(n, block, _JACOBIAN_BLOCK if method == "jacobian" else block))


def _assemble(run: _Run, by_layer: bool, verbose: bool | None):
    n, m = len(run.x), len(run.x) if run.x2 is None else len(run.x2)
    block = run.block
    total = np.zeros((n, m), np.float32)
    layers: dict[str, np.ndarray] = {}
    sq1: dict[str, np.ndarray] = {}  # layer -> squared norms of the rows' examples
    sq2: dict[str, np.ndarray] = {}
    progress = Progress("gradient_gram", _num_pairs(n, m, block, run.x2 is None), verbose)
    for b in run.blocks():
        for key, g in b.by_layer.items():
            total[b.rows, b.cols] += g
            sq1.setdefault(key, np.zeros(n, np.float32))[b.rows] = b.row_sq_norms[key]
            sq2.setdefault(key, np.zeros(m, np.float32))[b.cols] = b.col_sq_norms[key]
            if by_layer:
                layers.setdefault(key, np.zeros((n, m), np.float32))[b.rows, b.cols] = g
            if b.mirrored:
                total[b.cols, b.rows] += g.T
                if by_layer:
                    layers[key][b.cols, b.rows] = g.T
        progress.step()
    progress.close()
    return total, layers, sq1, sq2


def _num_pairs(n: int, m: int, block: int, one_set: bool) -> int:
    rows, cols = -(-n // block), -(-m // block)
    return rows * (rows + 1) // 2 if one_set else rows * cols


class Progress:
    """One self-overwriting stderr line: blocks done, elapsed, estimated time left."""

    def __init__(self, label: str, total: int, verbose: bool | None, done: int = 0):
        self.label, self.total, self.done, self.start = label, total, done, time.monotonic()
        self.first = done
        self.verbose, self.shown = verbose, False

    def step(self) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        # By default only long runs talk: after 5 s, when more than one block remains.
        if self.verbose or (self.verbose is None and elapsed > 5 and self.total > 1):
            self.shown = True
            left = elapsed / (self.done - self.first) * (self.total - self.done)
            sys.stderr.write(f"\r{self.label}: block {self.done}/{self.total}, "
                             f"{elapsed:.0f}s elapsed, ~{left:.0f}s left ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
