"""`gradient_gram`: exact per-example gradient Gram matrices of a Keras model.

Every method produces, block by block, *factors* of the per-example gradients (see
`_factors`); one tiling loop (`_tiling`) turns pairs of blocks into Gram blocks. Memory beyond
the result is bounded by a factor budget plus a few blocks, whatever N is.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import checks
from tfstiffness.engine import losses
from tfstiffness.engine import _precision
from tfstiffness.engine import structure
from tfstiffness.engine import tiling
from tfstiffness.engine import _validation
from tfstiffness.engine._generic import PerExampleGradients, layer_key, vmap_unsafe_layers
from tfstiffness.engine._ghost import GhostFactors
from tfstiffness.engine.losses import PerExampleLoss
from tfstiffness.errors import NonFiniteGradientError  # noqa: F401 (re-exported)

METHODS = ("auto", "ghost", "vmap", "jacobian")
# Row blocks' factors held at once (a band): when all fit, each block is computed once;
# beyond it, column blocks are recomputed once per band so memory stays bounded.
_CACHE_BYTES = 1 << 30
_GENERIC_BLOCK_BYTES = 256 << 20
_GHOST_BLOCK = 512

FactorSource = tiling.FactorSource


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
    loss_weights: Any = None,
) -> GradientGram:
    """Exact Gram matrix of per-example loss gradients w.r.t. the trainable parameters.

    Forward passes run in inference mode (`training=False`), so examples never interact.
    Inputs, labels and losses take every structure `model.fit` takes: see the README's
    "Models" section. Layers under a mixed-precision policy compute in float32 here.

    Args:
        model: a built or unbuilt Keras model (Sequential, functional, subclassed, nested;
            one or several inputs and outputs).
        x: inputs: one array [N, ...], a list of arrays, or a dict of arrays keyed by the
            model's input names. y: labels (integers, one-hot, or what `loss` expects): one
            array, or a list / dict with one entry per output.
        loss: a `keras.losses.Loss`, a loss name, a callable `(y_true, y_pred) -> [batch]`
            per-example (or per-token) loss, a list or dict of those (one per output), or
            None for the compiled model's loss and loss weights. An example's loss is the
            weighted sum over outputs; per-token losses are averaged over the unmasked
            tokens (the model's output mask, a loss's `ignore_class`).
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
        loss_weights: one weight per output (list or dict), for a `loss` given per output;
            None: 1 each, or the compiled loss weights when `loss` is None.

    Returns:
        A `GradientGram`.

    Raises:
        ValueError: bad input (named), NaN/inf in the model's variables, or a result that
            does not fit in memory (use `stiffness_summary`). `NonFiniteGradientError` when
            some examples' gradients are not finite (the model overflows on them).

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x, y = np.random.rand(8, 4).astype("float32"), np.arange(8) % 3
        >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> gram = tfs.gradient_gram(model, x, y, loss=loss)
        >>> gram.total.shape
        (8, 8)
    """
    run = _setup(model, x, y, loss, x2, y2, method, batch_size, strategy, loss_weights)
    _check_result_fits(run.n, run.m, 1 + (len(run.prepared.layer_keys) if by_layer else 0))
    total, layers, sq1, sq2 = _assemble(run, by_layer, verbose)
    return GradientGram(
        total=total, by_layer=layers, sq_norms=sum(sq1.values()),
        sq_norms2=sum(sq2.values()), cross=run.x2 is not None, method=run.prepared.method,
        fallback_layers=run.prepared.fallback_layers,
        layer_sq_norms=sq1 if by_layer else {},
        layer_sq_norms2=sq2 if by_layer else {})


@dataclass
class _Run:
    """Checked inputs (labels as the loss expects them) and what computes their factors."""

    x: Any
    y: Any
    x2: Any | None
    y2: Any | None
    prepared: _Prepared
    block: int
    strategy: tf.distribute.Strategy | None

    @property
    def n(self) -> int:
        return structure.num_examples(self.x)

    @property
    def m(self) -> int:
        return self.n if self.x2 is None else structure.num_examples(self.x2)

    def blocks(self, done: frozenset = frozenset()):
        return tiling.gram_blocks(self.prepared.source, self.x, self.y, self.x2, self.y2,
                                   block=self.block, cache_bytes=_CACHE_BYTES, done=done,
                                   strategy=self.strategy)


def _setup(model, x, y, loss, x2, y2, method, batch_size, strategy, loss_weights=None,
           batch_size_name: str = "batch_size") -> _Run:
    """Validates everything before any heavy work; shared by every entry point."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy: expected a tf.distribute.Strategy or None, got "
                        f"{type(strategy).__name__}.")
    checks.positive_int(batch_size, batch_size_name, allow_none=True)
    x = _validation.as_inputs(x, "x", model)
    _validation.check_lengths(x, y, "x", "y")
    if (x2 is None) != (y2 is None):
        raise ValueError("x2, y2: give both (a second set) or neither.")
    if x2 is not None:
        x2 = _validation.as_inputs(x2, "x2", model)
        _validation.check_lengths(x2, y2, "x2", "y2")
    _validation.check_finite_variables(model)
    prepared = _prepare(model, loss, loss_weights, method, x, y)
    y = prepared.loss_fn.prepare_labels(y, "y")
    if x2 is not None:
        _validation.check_input_shape(model, x2, "x2")
        y2 = prepared.loss_fn.prepare_labels(y2, "y2")
    if not prepared.connected_checked:
        with _precision.float32_compute(_precision.low_precision_layers(model)):
            _validation.check_connected(model, prepared.loss_fn, x, y)
        prepared.connected_checked = True
    n = structure.num_examples(x)
    m = n if x2 is None else structure.num_examples(x2)
    # A block never exceeds the larger set: a huge batch_size must not allocate for nothing.
    block = min(int(batch_size or _default_block(model, prepared.method, max(n, m))), max(n, m))
    return _Run(x, y, x2, y2, prepared, block, strategy)


@dataclass
class _Prepared:
    """What one (model, loss, method, variables, input structure) needs: checked and traced
    once."""

    loss_fn: PerExampleLoss
    source: FactorSource
    method: str
    raw_source: Any  # the source before any float32 wrapping: a GhostFactors knows more
    layer_keys: tuple[str, ...]
    connected_checked: bool = False

    @property
    def fallback_layers(self) -> tuple[str, ...]:
        return getattr(self.raw_source, "fallback_layers", ())


def _prepare(model: keras.Model, loss: Any, loss_weights: Any, method: str, x: Any,
             y: Any) -> _Prepared:
    _validation.check_input_shape(model, x, "x")
    # Everything that changes a trace is in the key: the loss (by value, not id), the input
    # and label structures with their shapes, the method, the trainable variables and the
    # compute policy.
    key = (losses.cache_key(loss if loss is not None else losses.compiled_loss(model),
                             loss_weights),
           method, structure.shapes_key(x), _label_key(y),
           tuple(id(v) for v in model.trainable_variables),
           tuple(getattr(layer, "compute_dtype", None)
                 for layer in _precision.low_precision_layers(model)))
    cache = model.__dict__.setdefault("_tfstiffness_prepared", {})
    prepared = cache.get(key)
    if prepared is None:
        _precision.warn_low_precision_variables(model)
        with _precision.float32_compute(_precision.low_precision_layers(model)):
            predictions = _validation.probe_model(model, x, "x")  # builds an unbuilt model
        loss_fn = losses.resolve_loss(loss, model, predictions, loss_weights)
        source, method_used = _factor_source(model, loss_fn, method)
        prepared = cache[key] = _Prepared(
            loss_fn, _precision.in_float32(model, source), method_used, source,
            tuple(dict.fromkeys(layer_key(v) for v in model.trainable_variables)))
    return prepared


def _label_key(y: Any) -> tuple:
    return tuple((np.shape(leaf)[1:], np.asarray(leaf).dtype.str)
                 for leaf in structure.leaves(y))


def _factor_source(model, loss_fn, method) -> tuple[FactorSource, str]:
    unsafe = vmap_unsafe_layers(model)
    if method == "vmap" and "recurrent" in unsafe:
        raise ValueError(
            f"method: 'vmap' cannot give per-example gradients through the recurrent "
            f"layer(s) {unsafe['recurrent']}: TensorFlow's vectorized_map fails on their loop. "
            "Use method='auto' (it sends them through 'jacobian') or 'jacobian'.")
    if method == "vmap" and unsafe:
        raise ValueError(
            f"method: 'vmap' would crash the process through layer(s) {unsafe['onednn']} with "
            "oneDNN enabled (see BUILD_NOTES.md); use method='auto' or 'jacobian', or set "
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
    return max(1, min(n, _GENERIC_BLOCK_BYTES // per_example))


def check_finite_block(b: tiling.GramBlock, one_set: bool) -> None:
    """Raises `NonFiniteGradientError` naming the examples of a block with non-finite
    gradients: a silent NaN would turn into plausible-looking stiffness downstream."""
    bad_rows, bad_cols = set(), set()
    for key, g in b.by_layer.items():
        finite = np.isfinite(g)
        if not finite.all():
            bad_rows.update(np.flatnonzero(~finite.all(1)) + b.rows.start)
            bad_cols.update(np.flatnonzero(~finite.all(0)) + b.cols.start)
        bad_rows.update(np.flatnonzero(~np.isfinite(b.row_sq_norms[key])) + b.rows.start)
        bad_cols.update(np.flatnonzero(~np.isfinite(b.col_sq_norms[key])) + b.cols.start)
    if not bad_rows and not bad_cols:
        return
    if one_set:
        bad_rows |= bad_cols
        bad_cols = set()
    parts = [f"{len(s)} example(s) of {name} (first at index {min(s)})"
             for name, s in (("x", bad_rows), ("x2", bad_cols)) if s]
    raise NonFiniteGradientError(
        f"gradient_gram: the loss gradients of {' and '.join(parts)} are NaN or inf: the "
        "model's outputs or the loss overflow there. Check those inputs' scale, the "
        "weights and the loss (e.g. from_logits).")


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_result_fits(n: int, m: int, matrices: int) -> None:
    """Refuses, before any allocation, a result larger than the memory available."""
    needed = 4 * n * m * matrices
    available = _available_bytes()
    if available is not None and needed > 0.8 * available:
        raise MemoryError(
            f"gradient_gram: the result ({matrices} x [{n}, {m}] float32) needs "
            f"{needed / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB of memory "
            "available. Use tfs.stiffness_summary, which streams the stiffness measures "
            "block by block without forming the matrix (or fewer examples / by_layer=False).")


def _assemble(run: _Run, by_layer: bool, verbose: bool | None):
    n, m = run.n, run.m
    block = run.block
    total = np.zeros((n, m), np.float32)
    layers: dict[str, np.ndarray] = {}
    sq1: dict[str, np.ndarray] = {}  # layer -> squared norms of the rows' examples
    sq2: dict[str, np.ndarray] = {}
    progress = Progress("gradient_gram", _num_pairs(n, m, block, run.x2 is None), verbose)
    for b in run.blocks():
        check_finite_block(b, run.x2 is None)
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
