"""`gradient_gram`: exact per-example gradient Gram matrices of a Keras model.

Every method produces, block by block, *factors* of the per-example gradients (see
`_factors`); one tiling loop turns pairs of blocks into Gram blocks. Memory beyond the result
is a few blocks' factors, whatever N is.
"""

from __future__ import annotations

import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import _factors, _validation
from tfstiffness._generic import PerExampleGradients, vmap_unsafe_layers
from tfstiffness._losses import prepare_labels, resolve_loss

METHODS = ("auto", "ghost", "vmap", "jacobian")
# Factors of all blocks are kept (each computed once) while they fit in this many bytes;
# beyond it, column blocks are recomputed so memory stays O(block).
_CACHE_BYTES = 2 << 30
_GENERIC_BLOCK_BYTES = 256 << 20
_GHOST_BLOCK = 512

FactorSource = Callable[[np.ndarray, np.ndarray], dict[str, list[_factors.Factor]]]


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
        verbose: show progress on stderr; by default when there are many blocks.

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
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
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
    source, method_used, fallback = prepared.source, prepared.method, prepared.fallback
    block = batch_size or _default_block(model, method_used, len(x))
    total, layers, sq1, sq2 = _assemble(source, x, y, x2, y2, block, by_layer, verbose)
    return GradientGram(
        total=total, by_layer=layers, sq_norms=sum(sq1.values()),
        sq_norms2=sum(sq2.values()), cross=x2 is not None, method=method_used,
        fallback_layers=fallback, layer_sq_norms=sq1 if by_layer else {},
        layer_sq_norms2=sq2 if by_layer else {})


@dataclass
class _Prepared:
    """What one (model, loss, method, variables, input shape) needs: checked and traced once."""

    loss_fn: Callable
    label_kind: str
    num_outputs: int | None
    source: FactorSource
    method: str
    fallback: tuple[str, ...]
    connected_checked: bool = False


# model -> {key: _Prepared}, so traced functions and model checks are reused across calls.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepare(model: keras.Model, loss: Any, method: str, x: np.ndarray) -> _Prepared:
    loss_fn, label_kind = resolve_loss(loss, model)
    _validation.check_input_shape(model, x, "x")
    key = (id(model.loss if loss is None else loss), method, x.shape[1:], x.dtype.str,
           tuple(id(v) for v in model.trainable_variables))
    per_model = _PREPARED.setdefault(model, {})
    if key not in per_model:
        num_outputs = _validation.probe_model(model, x, "x")  # builds the model, too
        key = key[:-1] + (tuple(id(v) for v in model.trainable_variables),)
        source, method_used, fallback = _factor_source(model, loss_fn, method)
        per_model[key] = _Prepared(loss_fn, label_kind, num_outputs, source, method_used,
                                   fallback)
    return per_model[key]


def _factor_source(model, loss_fn, method) -> tuple[FactorSource, str, tuple[str, ...]]:
    unsafe = vmap_unsafe_layers(model)
    if method == "vmap" and unsafe:
        raise ValueError(
            f"method: 'vmap' would crash the process through layer(s) {unsafe} with oneDNN "
            "enabled (see BUILD_NOTES.md); use method='ghost' or 'jacobian', or set "
            "TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow."
        )
    if method in ("vmap", "jacobian"):
        grads = PerExampleGradients(model, loss_fn, model.trainable_variables, method)
        return (lambda xb, yb: {k: [f] for k, f in grads(xb, yb).items()}), method, ()
    from tfstiffness._ghost import GhostFactors  # the structured path

    generic = "jacobian" if unsafe else "vmap"
    ghost = GhostFactors(model, loss_fn, generic_method=generic)
    return ghost, "ghost", ghost.fallback_layers


def _default_block(model: keras.Model, method: str, n: int) -> int:
    if method == "ghost":
        return min(n, _GHOST_BLOCK)
    per_example = 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return max(1, min(n, _GENERIC_BLOCK_BYTES // per_example))


class _Blocks:
    """The factors of one set's blocks: computed on demand, kept while they fit in memory."""

    def __init__(self, source: FactorSource, x, y, block: int, num_blocks_all: int):
        self.source, self.x, self.y, self.block = source, x, y, block
        self.slices = [slice(s, min(s + block, len(x))) for s in range(0, len(x), block)]
        self.num_blocks_all = num_blocks_all
        self.keep: bool | None = None
        self.cache: dict[int, dict[str, list[_factors.Factor]]] = {}

    def __getitem__(self, index: int) -> dict[str, list[_factors.Factor]]:
        if index in self.cache:
            return self.cache[index]
        rows = self.slices[index]
        xb, yb = self.x[rows], self.y[rows]
        n = len(xb)
        if n < self.block:  # pad to the block size so traced functions are reused
            pad = self.block - n
            xb = np.concatenate([xb, np.repeat(xb[:1], pad, 0)])
            yb = np.concatenate([yb, np.repeat(yb[:1], pad, 0)])
        factors = {key: [_take(f, n) for f in fs] for key, fs in self.source(xb, yb).items()}
        if self.keep is None:
            size = sum(_factors.nbytes(f) for fs in factors.values() for f in fs)
            self.keep = size * self.num_blocks_all <= _CACHE_BYTES
        if self.keep:
            self.cache[index] = factors
        return factors


def _take(f: _factors.Factor, n: int) -> _factors.Factor:
    if f.size == n:
        return f
    return type(f)(*(t[:n] for t in vars(f).values()))


def _assemble(source, x, y, x2, y2, block, by_layer, verbose):
    num_blocks = -(-len(x) // block) + (0 if x2 is None else -(-len(x2) // block))
    rows = _Blocks(source, x, y, block, num_blocks)
    cols = rows if x2 is None else _Blocks(source, x2, y2, block, num_blocks)
    n, m = len(x), len(x) if x2 is None else len(x2)
    total = np.zeros((n, m), np.float32)
    layers: dict[str, np.ndarray] = {}
    sq1: dict[str, np.ndarray] = {}  # layer -> squared norms of the rows' examples
    sq2: dict[str, np.ndarray] = {}
    num_rows, num_cols = len(rows.slices), len(cols.slices)
    progress = _Progress(num_rows * (num_rows + 1) // 2 if x2 is None else num_rows * num_cols,
                         verbose)
    for i, ri in enumerate(rows.slices):
        fi = rows[i]  # held across the row: only column blocks are ever recomputed
        _store_sq_norms(sq1, fi, ri, n)
        for j in range(i, num_cols) if x2 is None else range(num_cols):
            fj, rj = (fi if x2 is None and j == i else cols[j]), cols.slices[j]
            if x2 is not None and i == 0:
                _store_sq_norms(sq2, fj, rj, m)
            for key in fi:
                g = np.asarray(tf.add_n([_factors.gram(a, b) for a, b in zip(fi[key], fj[key])]))
                total[ri, rj] += g
                if by_layer:
                    layers.setdefault(key, np.zeros((n, m), np.float32))[ri, rj] = g
                if x2 is None and i != j:
                    total[rj, ri] += g.T
                    if by_layer:
                        layers[key][rj, ri] = g.T
            progress.step()
    progress.close()
    return total, layers, sq1, sq1 if x2 is None else sq2


def _store_sq_norms(store: dict[str, np.ndarray], factors, rows: slice, n: int) -> None:
    for key, fs in factors.items():
        store.setdefault(key, np.zeros(n, np.float32))[rows] = np.asarray(
            tf.add_n([_factors.sq_norms(f) for f in fs]))


class _Progress:
    """One self-overwriting stderr line: blocks done, elapsed, estimated time left."""

    def __init__(self, total: int, verbose: bool | None):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.verbose, self.shown = verbose, False

    def step(self) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        # By default only long runs talk: after 5 s, when more than one block remains.
        if self.verbose or (self.verbose is None and elapsed > 5 and self.total > 1):
            self.shown = True
            left = elapsed / self.done * (self.total - self.done)
            sys.stderr.write(f"\rgradient_gram: block {self.done}/{self.total}, "
                             f"{elapsed:.0f}s elapsed, ~{left:.0f}s left ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
