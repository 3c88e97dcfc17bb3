"""`gradient_gram`: exact per-example gradient Gram matrices of a Keras model.

Every method produces, block by block, *factors* of the per-example gradients (see
`_factors`); a prepared run (`run.prepare_run`) drives one tiling loop (`tiling`) that turns
pairs of blocks into Gram blocks, which `gradient_gram` assembles into the matrix. Memory
beyond the result is bounded by a factor budget plus a few blocks, whatever N is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness.engine import memory
from tfstiffness.engine.run import METHODS, GramRun, Progress, check_finite_block, prepare_run
from tfstiffness.errors import NonFiniteGradientError

__all__ = ["METHODS", "GradientGram", "NonFiniteGradientError", "gradient_gram"]


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
    y: Any = None,
    loss: Any = None,
    x2: Any = None,
    y2: Any = None,
    by_layer: bool = False,
    method: str = "auto",
    batch_size: int | None = None,
    verbose: bool | None = None,
    strategy: tf.distribute.Strategy | None = None,
    loss_weights: Any = None,
    sample_weight: Any = None,
    sample_weight2: Any = None,
    num_examples: int | None = None,
) -> GradientGram:
    """Exact Gram matrix of per-example loss gradients w.r.t. the trainable parameters.

    Forward passes run in inference mode (`training=False`), so examples never interact.
    Inputs, labels and losses take every structure `model.fit` takes: see
    docs/guides/models.md. Layers under a mixed-precision policy compute in float32 here.

    Args:
        model: a built or unbuilt Keras model (Sequential, functional, subclassed, nested;
            one or several inputs and outputs).
        x: inputs: one array [N, ...], a list of arrays, or a dict of arrays keyed by the
            model's input names; or, as for `fit`, a `tf.data.Dataset` (batched or not), a
            `keras.utils.PyDataset` or a generator yielding `x`, `(x,)`, `(x, y)` or
            `(x, y, sample_weight)` (then y and sample_weight are not passed; the data is read
            once into arrays).
        y: labels (integers, one-hot, or what `loss` expects): one array, or a list / dict
            with one entry per output.
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
        sample_weight: weights of the examples of `x`, as `fit` takes them: per example [N],
            loss_i = w_i * l_i, so the result is diag(w) G diag(w); or per token [N, T] for
            per-token losses, loss_i = sum_t w_it m_it l_it / max(sum_t m_it, 1) with m the
            model's output mask (1 when none), which is `fit`'s loss on a batch of that one
            example (weights do not change the divisor). None: 1 each.
        sample_weight2: the same for `x2` (the cross Gram is then diag(w) G diag(w2)).
        num_examples: read at most this many examples of a dataset or generator `x` (needed
            when it is endless); None: all.

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
    run = prepare_run(model, x, y, loss, x2, y2, method, batch_size, strategy, loss_weights,
                      sample_weight=sample_weight, sample_weight2=sample_weight2,
                      num_examples=num_examples)
    _check_result_fits(run.n, run.m, 1 + (len(run.prepared.layer_keys) if by_layer else 0))
    total, layers, sq1, sq2 = _assemble(run, by_layer, verbose)
    return GradientGram(
        total=total, by_layer=layers, sq_norms=sum(sq1.values()),
        sq_norms2=sum(sq2.values()), cross=run.x2 is not None, method=run.prepared.method,
        fallback_layers=run.prepared.fallback_layers,
        layer_sq_norms=sq1 if by_layer else {},
        layer_sq_norms2=sq2 if by_layer else {})


# The share of the available memory a result may take (the rest: the process, the factors).
MEMORY_SHARE = 0.8


def _check_result_fits(n: int, m: int, matrices: int) -> None:
    """Refuses, before any allocation, a result larger than the memory available."""
    needed = 4 * n * m * matrices
    available = memory.host_available_bytes()
    if available is not None and needed > MEMORY_SHARE * available:
        raise MemoryError(
            f"gradient_gram: the result ({matrices} x [{n}, {m}] float32) needs "
            f"{needed / 2**30:.1f} GiB, more than the {MEMORY_SHARE * available / 2**30:.1f} "
            f"GiB it may take ({MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB of memory "
            "available). Use tfs.stiffness_summary, which streams the stiffness measures "
            "block by block without forming the matrix (or fewer examples / by_layer=False).")


def _assemble(run: GramRun, by_layer: bool, verbose: bool | None):
    n, m = run.n, run.m
    total = np.zeros((n, m), np.float32)
    layers: dict[str, np.ndarray] = {}
    sq1: dict[str, np.ndarray] = {}  # layer -> squared norms of the rows' examples
    sq2: dict[str, np.ndarray] = {}
    progress = Progress("gradient_gram", run.num_block_pairs, verbose)
    for b in run.blocks():
        check_finite_block(b, run.one_set)
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
