"""The engine's interface inside the package: prepare a run, then iterate its Gram blocks.

Every entry point that computes gradient Gram blocks (`gradient_gram`, `stiffness_summary`,
TracIn, the saved-model summary's checks) goes through `prepare_run`: it validates the model,
inputs and labels, resolves the loss, chooses the factor source (ghost rules or the generic
path) and the block size, all before any heavy work, and returns a `GramRun`. A run yields its
Gram blocks in a fixed order (`GramRun.blocks`), or a worker's share of them on a cluster
(`GramRun.local_steps`); `check_finite_block` refuses a block with non-finite gradients and
`Progress` is the one progress line of every blocked loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import checks
from tfstiffness.engine import (
    _precision,
    _validation,
    losses,
    memory,
    pipelines,
    structure,
    tiling,
)
from tfstiffness.engine._generic import (
    PerExampleGradients,
    jacobian_unsafe_layers,
    vmap_unsafe_layers,
)
from tfstiffness.engine._ghost import GhostFactors
from tfstiffness.engine.layer_keys import layer_key
from tfstiffness.engine.losses import PerExampleLoss
from tfstiffness.errors import NonFiniteGradientError

METHODS = ("auto", "ghost", "vmap", "jacobian")
# Row blocks' factors held at once (a band): when all fit, each block is computed once;
# beyond it, column blocks are recomputed once per band so memory stays bounded. The largest
# budget; a run's own (`GramRun.cache_bytes`) follows the device's free memory (`memory`).
FACTOR_CACHE_BYTES = memory.FACTOR_CACHE_CAP
_GHOST_BLOCK = 512


@dataclass
class PreparedModel:
    """What one (model, loss, method, variables, input structure) needs: checked and traced
    once, and cached on the model.

    Attributes:
        loss_fn: the per-example loss.
        source: computes a block's gradient factors (in float32 under mixed precision).
        method: the method used ("ghost", "vmap" or "jacobian").
        raw_source: the source before any float32 wrapping (a `GhostFactors` knows more).
        layer_keys: the model's layers with trainable variables, in order (`layer_key`).
        connected_checked: the loss was checked to depend on the variables.
    """

    loss_fn: PerExampleLoss
    source: tiling.FactorSource
    method: str
    raw_source: Any
    layer_keys: tuple[str, ...]
    connected_checked: bool = False

    @property
    def fallback_layers(self) -> tuple[str, ...]:
        """With the ghost method, layers without a rule (computed by the generic path)."""
        return getattr(self.raw_source, "fallback_layers", ())


@dataclass
class GramRun:
    """Checked inputs (labels as the loss expects them) and what computes their factors.

    Attributes:
        x, y: the first set (rows), checked; y as the loss expects it.
        x2, y2: the second set (columns), or None for the Gram of one set.
        prepared: the model's loss and factor source.
        block: examples per block.
        strategy: the `tf.distribute.Strategy` spreading blocks, or None.
        cache_bytes: the budget of cached row factors (`memory.factor_cache_bytes`).
    """

    x: Any
    y: Any
    x2: Any | None
    y2: Any | None
    prepared: PreparedModel
    block: int
    strategy: tf.distribute.Strategy | None
    cache_bytes: int = FACTOR_CACHE_BYTES

    @property
    def n(self) -> int:
        """Examples of the first set."""
        return structure.num_examples(self.x)

    @property
    def m(self) -> int:
        """Examples of the second set (N for one set)."""
        return self.n if self.x2 is None else structure.num_examples(self.x2)

    @property
    def one_set(self) -> bool:
        """True for the Gram of one set with itself (blocks above the diagonal only)."""
        return self.x2 is None

    @property
    def num_block_pairs(self) -> int:
        """The number of Gram blocks the run yields in all."""
        return tiling.num_block_pairs(self.n, self.m, self.block, self.one_set)

    def blocks(self, done: frozenset = frozenset()) -> Iterator[tiling.GramBlock]:
        """Every Gram block not in `done` (pairs of block indices), in a fixed order; under a
        strategy, every worker yields every block."""
        return tiling.gram_blocks(self.prepared.source, self.x, self.y, self.x2, self.y2,
                                  block=self.block, cache_bytes=self.cache_bytes, done=done,
                                  strategy=self.strategy)

    def local_steps(self, done: frozenset = frozenset()) -> Iterator[list[tiling.GramBlock]]:
        """This worker's Gram blocks, one list per step of the cluster (`tiling.local_steps`);
        needs the run's strategy."""
        return tiling.local_steps(self.prepared.source, self.x, self.y, self.x2, self.y2,
                                  block=self.block, cache_bytes=self.cache_bytes,
                                  strategy=self.strategy, done=done)


def prepare_run(model: keras.Model, x: Any, y: Any, loss: Any, x2: Any, y2: Any, method: str,
                batch_size: int | None, strategy: tf.distribute.Strategy | None,
                loss_weights: Any = None, batch_size_name: str = "batch_size",
                sample_weight: Any = None, sample_weight2: Any = None,
                num_examples: int | None = None) -> GramRun:
    """Validates everything before any heavy work; shared by every entry point.

    Args:
        model, x, y, loss, x2, y2, method, batch_size, strategy, loss_weights, sample_weight,
            sample_weight2, num_examples: as for `gradient_gram`; weighted labels then carry
            their weights (`losses.weighted_labels`); datasets and generators are read here
            (`pipelines.examples`).
        batch_size_name: what the caller calls `batch_size` in its messages.

    Returns:
        A `GramRun` whose blocks are computed on demand.

    Raises:
        ValueError, TypeError: naming the argument, for anything `gradient_gram` refuses.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy: expected a tf.distribute.Strategy or None, got "
                        f"{type(strategy).__name__}.")
    checks.positive_int(batch_size, batch_size_name, allow_none=True)
    x, y, sample_weight = pipelines.examples(model, x, y, sample_weight, "x", num_examples)
    x2, y2, sample_weight2 = pipelines.examples(model, x2, y2, sample_weight2, "x2")
    x = _validation.as_inputs(x, "x", model)
    _validation.check_lengths(x, y, "x", "y")
    if (x2 is None) != (y2 is None):
        raise ValueError("x2, y2: give both (a second set) or neither.")
    if x2 is not None:
        x2 = _validation.as_inputs(x2, "x2", model)
        _validation.check_lengths(x2, y2, "x2", "y2")
    _validation.check_finite_variables(model)
    _validation.check_not_float8(model)
    prepared = _prepare(model, loss, loss_weights, method, x, y)
    y = _weighted(prepared.loss_fn, x, prepared.loss_fn.prepare_labels(y, "y"),
                  sample_weight, "sample_weight")
    if x2 is not None:
        _validation.check_input_shape(model, x2, "x2")
        y2 = _weighted(prepared.loss_fn, x2, prepared.loss_fn.prepare_labels(y2, "y2"),
                       sample_weight2, "sample_weight2")
    elif sample_weight2 is not None:
        raise ValueError("sample_weight2: weights the second set; pass x2 and y2 with it.")
    if not prepared.connected_checked:
        with _precision.float32_compute(_precision.low_precision_layers(model)):
            _validation.check_connected(model, prepared.loss_fn, x, y)
        prepared.connected_checked = True
    n = structure.num_examples(x)
    m = n if x2 is None else structure.num_examples(x2)
    # A block never exceeds the larger set: a huge batch_size must not allocate for nothing.
    available = memory.device_available_bytes()
    block = min(int(batch_size or default_block_size(model, prepared.method, max(n, m),
                                                     available)), max(n, m))
    return GramRun(x, y, x2, y2, prepared, block, strategy,
                   memory.factor_cache_bytes(available))


def _weighted(loss_fn: PerExampleLoss, x: Any, y: Any, weight: Any, argument: str) -> Any:
    if weight is None:
        return y
    w = loss_fn.prepare_sample_weight(weight, structure.num_examples(x), argument)
    return losses.weighted_labels(y, w)


def _prepare(model: keras.Model, loss: Any, loss_weights: Any, method: str, x: Any,
             y: Any) -> PreparedModel:
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
        prepared = cache[key] = PreparedModel(
            loss_fn, _precision.in_float32(model, source), method_used, source,
            tuple(dict.fromkeys(layer_key(v) for v in model.trainable_variables)))
    return prepared


def _label_key(y: Any) -> tuple:
    return tuple((np.shape(leaf)[1:], np.asarray(leaf).dtype.str)
                 for leaf in structure.leaves(y))


def _factor_source(model, loss_fn, method) -> tuple[tiling.FactorSource, str]:
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
    grouped = jacobian_unsafe_layers(model) if method == "jacobian" else []
    if grouped:
        raise ValueError(
            f"method: 'jacobian' gives wrong per-example gradients through the grouped "
            f"convolution layer(s) {grouped} (TensorFlow's tape.jacobian "
            "through a grouped convolution); use method='auto' (exact there), 'ghost' or "
            "'vmap'.")
    if method in ("vmap", "jacobian"):
        grads = PerExampleGradients(model, loss_fn, model.trainable_variables, method)
        return (lambda xb, yb: {k: [f] for k, f in grads(xb, yb).items()}), method
    generic = "jacobian" if unsafe else "vmap"
    return GhostFactors(model, loss_fn, generic_method=generic), "ghost"


def default_block_size(model: keras.Model, method: str, n: int,
                       available: int | None = None) -> int:
    """Examples per block when none is given: a fixed count for the ghost path; for the
    generic paths, as many materialised per-example gradients as fit the budget for
    `available` free bytes on the device (`memory.generic_block_bytes`; None: the largest)."""
    if method == "ghost":
        return min(n, _GHOST_BLOCK)
    per_example = 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return max(1, min(n, memory.generic_block_bytes(available) // per_example))


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


class Progress:
    """One self-overwriting stderr line: blocks done, elapsed, estimated time left.

    Args:
        label: what is computed (the caller's name).
        total: blocks in all; done: blocks already done (resumed) before this call.
        verbose: True: always show; False: never; None: once a run passes 5 seconds.
    """

    def __init__(self, label: str, total: int, verbose: bool | None, done: int = 0):
        self.label, self.total, self.done, self.start = label, total, done, time.monotonic()
        self.first = done
        self.verbose, self.shown = verbose, False

    def step(self) -> None:
        """Counts one block done, and shows the line when it should."""
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
        """Ends the line (if it was shown)."""
        if self.shown:
            sys.stderr.write("\n")
