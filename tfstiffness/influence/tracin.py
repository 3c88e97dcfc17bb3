"""TracIn: which training examples helped or hurt each test example, along the training path.

Pruthi, Liu, Kale and Sundararajan (2020, "Estimating Training Data Influence by Tracing
Gradient Descent", the TracInCP form) score a training example z against a test example z'
by summing, over checkpoints t of training with learning rates eta_t, how a gradient step on
z changed the loss on z':

    dot:     TracIn(z, z') = sum_t eta_t g_t(z) . g_t(z')
    cosine:  TracIn(z, z') = sum_t eta_t g_t(z) . g_t(z') / (|g_t(z)| |g_t(z')|)

where g_t is the per-example loss gradient w.r.t. the trainable parameters at checkpoint t
(inference mode). Positive: z is a *proponent* of z' (training on z lowered the loss on z');
negative: an *opponent*. The self-influence `sum_t eta_t |g_t(z)|^2` is large for examples
the model kept struggling with, mislabelled ones among them.

Each term is a cross Gram block that the engine computes exactly (a run from
`engine.run.prepare_run`, blocks from `engine.tiling`). The loop is training blocks outer,
checkpoints inner: each checkpoint's test-set gradient factors are computed once and held,
every training block's factors are computed once per checkpoint and dropped, and a [block, M]
slab of summed scores is folded into the result (the full [N, M] matrix, or a running top-k
per test example). So with `top_k`, memory is
O(T * test factors + block factors + block * M), never N x M.

`TracInAccumulator` takes checkpoints one at a time (what `tracin` and the training callback
`callback.TracInCallback` both feed); `tracin` adds loading checkpoints from models or files
(`checkpoints`).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import checks
from tfstiffness.engine import pipelines, tiling
from tfstiffness.engine.run import GramRun, Progress, check_finite_block, prepare_run
from tfstiffness.errors import NonFiniteGradientError
from tfstiffness.influence.checkpoints import (
    architecture,
    check_finite_weights,
    check_same_architecture,
    checked_checkpoints,
    checked_learning_rate,
    checked_learning_rates,
    load_checkpoints,
)

KINDS = ("dot", "cosine")

__all__ = ["KINDS", "TracInAccumulator", "TracInResult", "tracin"]


@dataclass
class TracInResult:
    """TracIn scores of training examples against test examples, and self-influence.

    Attributes:
        kind: "dot" or "cosine" (see the module docstring for the formulas).
        learning_rates: [T] eta_t of each checkpoint, in order.
        self_influence: [N] float64 `sum_t eta_t |g_t(z_i)|^2` of each training example (the
            dot form whatever `kind`: the cosine of a gradient with itself is always 1).
        test_self_influence: [M] the same for each test example (None without a test set).
        scores: [N, M] float64 TracIn of training example i on test example j; None when
            `top_k` was given or there is no test set.
        proponents: [M, k] int64 training indices with the k largest scores for each test
            example, largest first (ties: lower index first); None without `top_k`. A
            proponent's score may be negative when fewer than k are positive: read the score.
        proponent_scores: [M, k] their scores.
        opponents: [M, k] int64 training indices with the k smallest (most negative) scores,
            most negative first (ties: lower index first).
        opponent_scores: [M, k] their scores.
        method: the engine method that computed the gradients ("ghost", "vmap", "jacobian").
        num_zero_gradient: (example, checkpoint) pairs whose gradient was exactly zero; with
            kind "cosine" their cosine counts as 0.
    """

    kind: str
    learning_rates: np.ndarray
    self_influence: np.ndarray
    test_self_influence: np.ndarray | None
    method: str
    scores: np.ndarray | None = None
    proponents: np.ndarray | None = None
    proponent_scores: np.ndarray | None = None
    opponents: np.ndarray | None = None
    opponent_scores: np.ndarray | None = None
    num_zero_gradient: int = 0

    @property
    def num_checkpoints(self) -> int:
        return len(self.learning_rates)

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(proponents, their scores, opponents, their scores), each [M, k], from `scores` or
        from the streamed top-k (then k <= top_k); the same order and ties as `top_k`."""
        if self.proponents is not None:
            if not checks.is_int(k) or not 1 <= k <= self.proponents.shape[1]:
                raise ValueError(f"k: expected an integer in [1, {self.proponents.shape[1]}] "
                                 f"(the top_k computed), got {k!r}.")
            return (self.proponents[:, :k], self.proponent_scores[:, :k],
                    self.opponents[:, :k], self.opponent_scores[:, :k])
        if self.scores is None:
            raise ValueError("k: this result has no test set, so no proponents.")
        if not checks.is_int(k) or not 1 <= k <= len(self.scores):
            raise ValueError(f"k: expected an integer in [1, {len(self.scores)}], got {k!r}.")
        top = _TopK(self.scores.shape[1], k)
        top.merge(slice(0, len(self.scores)), self.scores)
        return top.best_index, top.best, top.worst_index, top.worst

    def self_influence_ranking(self) -> np.ndarray:
        """Training indices by self-influence, largest first (ties: lower index first)."""
        return np.argsort(-self.self_influence, kind="stable")


class TracInAccumulator:
    """TracIn over checkpoints fed one at a time: `add(model, learning_rate)`, then `result()`.

    Without `top_k` each `add` computes that checkpoint's contribution at once and keeps only
    the running sums ([N, M] scores, self-influences), so nothing of the checkpoint is kept:
    this is what a training callback needs. With `top_k`, `add` keeps a copy of the model's
    weights and `result` streams all of them (training blocks outer, checkpoints inner), so the
    [N, M] matrix is never formed; the model is restored to its weights afterwards.

    Args:
        x, y: the training examples (any input structure the engine accepts) and labels.
        x_test, y_test: the test examples; None for self-influence only.
        loss, method: as for `gradient_gram` (`loss=None`: the first added model's compiled
            loss).
        kind: "dot" or "cosine".
        top_k: keep only each test example's top-k proponents and opponents.
        block_size: training (and test) examples per block (default as `gradient_gram`).
        verbose: progress on stderr (default: after 5 seconds).

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> x, y = np.random.rand(20, 4).astype("float32"), np.arange(20) % 3
        >>> acc = tfs.TracInAccumulator(x, y, x[:5], y[:5])
        >>> for epoch in range(2):
        ...     _ = model.fit(x, y, epochs=1, verbose=0)  # with SGD, pass its learning rate
        ...     acc.add(model, learning_rate=0.01)
        >>> acc.result().scores.shape
        (20, 5)
    """

    def __init__(self, x: Any, y: Any = None, x_test: Any = None, y_test: Any = None, *,
                 loss: Any = None, kind: str = "dot", top_k: int | None = None,
                 block_size: int | None = None, method: str = "auto",
                 verbose: bool | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}.")
        checks.positive_int(block_size, "block_size", allow_none=True)
        # Datasets and generators are read once here (no model yet: a dataset whose leading
        # size is unknown counts as batched); the weights they yield weight the losses.
        x, y, self.weights = pipelines.read_examples(x, y, None, "x", None)
        x_test, y_test, self.weights_test = pipelines.read_examples(x_test, y_test, None,
                                                                    "x_test", None)
        if (x_test is None) != (y_test is None):
            raise ValueError("x_test, y_test: give both (a test set) or neither "
                             "(self-influence only).")
        self.n = _num_examples(x, "x")
        self.m = None if x_test is None else _num_examples(x_test, "x_test")
        if top_k is not None:
            if x_test is None:
                raise ValueError("top_k: proponents and opponents need a test set (x_test).")
            if not checks.is_int(top_k) or not 1 <= top_k <= self.n:
                raise ValueError(f"top_k: expected an integer in [1, {self.n}] (the number "
                                 f"of training examples) or None, got {top_k!r}.")
        self.x, self.y, self.x_test, self.y_test = x, y, x_test, y_test
        self.loss, self.kind, self.top_k = loss, kind, top_k
        self.block_size, self.method, self.verbose = block_size, method, verbose
        self._run: GramRun | None = None
        self._run_model: keras.Model | None = None
        self._reference: list[tuple[str, tuple, str]] | None = None  # first model's weights
        self._learning_rates: list[float] = []
        self._snapshots: list[list[np.ndarray]] = []  # with top_k: each checkpoint's weights
        self._model: keras.Model | None = None
        self._totals: _Totals | None = None  # without top_k: the running sums

    @property
    def num_checkpoints(self) -> int:
        return len(self._learning_rates)

    def add(self, model: keras.Model, learning_rate: float = 1.0) -> None:
        """Records `model`'s current weights as a checkpoint with step size `learning_rate`.

        Raises:
            ValueError: a learning rate that is not a finite number >= 0, weights with NaN or
                inf, or an architecture (weight shapes) other than the first checkpoint's.
        """
        eta = checked_learning_rate(learning_rate, "learning_rate")
        weights = model.get_weights()
        check_finite_weights(model, weights, "model")
        signature = architecture(model)
        if self._reference is None:
            self._reference = signature
        else:
            check_same_architecture(signature, self._reference, "model",
                                     "the first checkpoint")
        run = self._run_for(model)
        if self.top_k is None:
            if self._totals is None:
                self._totals = _Totals.empty(self.n, self.m)
            self._stream(run, model, [(None, eta)], self._totals)
        else:
            self._snapshots.append(weights)
            self._model = model
        self._learning_rates.append(eta)

    def result(self) -> TracInResult:
        """The scores over every checkpoint added so far."""
        if not self._learning_rates:
            raise ValueError("checkpoints: none added yet; call add(model, learning_rate) "
                             "first.")
        if self.top_k is None:
            totals = self._totals
        else:
            totals = _Totals.empty(self.n, None, top=_TopK(self.m, self.top_k))
            model = self._model
            run = self._run_for(model)
            original = model.get_weights()
            try:
                self._stream(run, model, list(zip(self._snapshots, self._learning_rates)),
                             totals)
            finally:
                model.set_weights(original)
        if totals.num_zero_gradient and self.kind == "cosine":
            warnings.warn(f"{totals.num_zero_gradient} (example, checkpoint) pairs have an "
                          "exactly zero gradient; their cosine counts as 0.", UserWarning,
                          stacklevel=2)
        result = TracInResult(
            kind=self.kind, learning_rates=np.asarray(self._learning_rates, np.float64),
            self_influence=totals.self_influence.copy(),
            test_self_influence=None if totals.test_self is None else totals.test_self.copy(),
            method=self._run.prepared.method, num_zero_gradient=totals.num_zero_gradient)
        if totals.top is not None:
            top = totals.top
            result.proponents, result.proponent_scores = top.best_index, top.best
            result.opponents, result.opponent_scores = top.worst_index, top.worst
        elif totals.scores is not None:
            result.scores = totals.scores.copy()
        return result

    def _run_for(self, model: keras.Model) -> GramRun:
        """Checked data for `model` (traced functions are cached by the engine per model)."""
        if self._run is None or self._run_model is not model:
            with _named_arguments():
                self._run = prepare_run(model, self.x, self.y, self.loss, self.x_test,
                                        self.y_test, self.method, self.block_size, None,
                                        sample_weight=self.weights,
                                        sample_weight2=self.weights_test)
            self._run_model = model
        return self._run

    def _stream(self, run: GramRun, model: keras.Model,
                checkpoints: list[tuple[list[np.ndarray] | None, float]],
                totals: _Totals) -> None:
        """Folds every training block of every checkpoint into `totals`.

        Training blocks outer, checkpoints inner. `checkpoints` holds (weights, eta) with
        weights None for "the model as it is" (then there must be one checkpoint).
        """
        source = run.prepared.source
        train = tiling.BlockFactors(source, run.x, run.y, run.block)
        test = None if run.x2 is None else tiling.BlockFactors(source, run.x2, run.y2,
                                                                 run.block)
        held: list[list | None] = [None] * len(checkpoints)  # test factors per checkpoint
        progress = Progress("tracin", len(train.slices) * len(checkpoints), self.verbose)
        active = None
        for j, rows in enumerate(train.slices):
            slab = None if test is None else np.zeros((rows.stop - rows.start, self.m))
            for t, (weights, eta) in enumerate(checkpoints):
                if weights is not None and active != t:
                    model.set_weights(weights)
                    active = t
                factors = train(j)
                if test is None:  # factors of a padded block: keep its real rows
                    sq = _summed(tiling.sq_norms(factors))[:rows.stop - rows.start]
                    if not np.isfinite(sq).all():
                        raise NonFiniteGradientError(
                            f"tracin: the loss gradients of training examples "
                            f"{(np.flatnonzero(~np.isfinite(sq)) + rows.start).tolist()[:5]} "
                            f"are NaN or inf at checkpoint {t}.")
                else:
                    if held[t] is None:
                        held[t] = [test(i) for i in range(len(test.slices))]
                    for i, cols in enumerate(test.slices):
                        block = tiling.gram_block((j, i), rows, cols, factors, held[t][i],
                                               mirrored=False)
                        check_finite_block(block, one_set=False)
                        sq, sq_test = _summed(block.row_sq_norms), _summed(block.col_sq_norms)
                        g = _summed(block.by_layer)
                        if self.kind == "cosine":
                            g *= _inverse_norms(sq)[:, None] * _inverse_norms(sq_test)[None, :]
                        slab[:, cols] += eta * g
                        if j == 0:
                            totals.test_self[cols] += eta * sq_test
                            totals.num_zero_gradient += int(np.sum(sq_test == 0))
                totals.self_influence[rows] += eta * sq
                totals.num_zero_gradient += int(np.sum(sq == 0))
                progress.step()
            if slab is not None:
                totals.fold(rows, slab)
        progress.close()


@dataclass
class _Totals:
    """Running sums: self-influences, and the scores as a matrix or as a running top-k."""

    self_influence: np.ndarray
    test_self: np.ndarray | None
    scores: np.ndarray | None
    top: _TopK | None
    num_zero_gradient: int = 0

    @classmethod
    def empty(cls, n: int, m: int | None, top: _TopK | None = None) -> _Totals:
        m = top.m if top is not None else m
        scores = None if m is None or top is not None else np.zeros((n, m))
        return cls(np.zeros(n), None if m is None else np.zeros(m), scores, top)

    def fold(self, rows: slice, slab: np.ndarray) -> None:
        if self.top is not None:
            self.top.merge(rows, slab)
        else:
            self.scores[rows] += slab


class _TopK:
    """Each test example's k largest and k smallest scores seen so far, with their indices.

    Order: by score (descending for the best, ascending for the worst), ties by training
    index ascending; empty slots (score -inf / +inf, index -1) sort last.
    """

    def __init__(self, m: int, k: int):
        self.m, self.k = m, k
        self.best = np.full((m, k), -np.inf)
        self.best_index = np.full((m, k), -1, np.int64)
        self.worst = np.full((m, k), np.inf)
        self.worst_index = np.full((m, k), -1, np.int64)

    def merge(self, rows: slice, slab: np.ndarray) -> None:
        """Merges `slab` [rows, M]: the scores of training examples `rows` on every test one."""
        scores = slab.T  # [M, block]
        index = np.broadcast_to(np.arange(rows.start, rows.stop), scores.shape)
        self.best, self.best_index = _keep(self.best, self.best_index, scores, index, self.k,
                                           largest=True)
        self.worst, self.worst_index = _keep(self.worst, self.worst_index, scores, index,
                                             self.k, largest=False)


def _keep(kept, kept_index, scores, index, k: int, largest: bool):
    values = np.concatenate([kept, scores], axis=1)
    indices = np.concatenate([kept_index, index], axis=1)
    # lexsort: last key is primary. Empty slots have index -1: push them after real ties.
    tie_break = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    order = np.lexsort((tie_break, -values if largest else values), axis=1)[:, :k]
    return np.take_along_axis(values, order, 1), np.take_along_axis(indices, order, 1)


def tracin(
    checkpoints: Sequence[keras.Model | str | os.PathLike],
    x: Any,
    y: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    loss: Any = None,
    learning_rates: Sequence[float] | None = None,
    kind: str = "dot",
    top_k: int | None = None,
    block_size: int | None = None,
    model: keras.Model | None = None,
    method: str = "auto",
    verbose: bool | None = None,
) -> TracInResult:
    """TracIn scores (Pruthi et al. 2020) of training examples on test examples, exactly.

    `score[i, j] = sum_t eta_t g_t(x_i) . g_t(x_test_j)` for `kind="dot"`, and
    `sum_t eta_t cos(g_t(x_i), g_t(x_test_j))` for `kind="cosine"` (a zero gradient has
    cosine 0), where g_t is the per-example loss gradient w.r.t. the trainable parameters of
    checkpoint t in inference mode and eta_t its learning rate. The cosine form ignores how
    large each gradient is, so examples with large losses do not dominate every ranking
    (Pruthi et al. discuss normalised gradients; Hanawa et al., ICLR 2021, found the gradient
    cosine the best-behaved of the similarity-based explanations they tested).

    Args:
        checkpoints: the model at successive points of training, each a Keras model, a
            `.keras` file, or a `.weights.h5` file (loaded into `model`). All must have the
            same architecture.
        x, y: training examples and labels (any structure the engine takes); x may also be
            a tf.data.Dataset, PyDataset or generator yielding (x, y) or (x, y, sample_weight)
            (then y is None; weights weight each example's loss, as in `gradient_gram`).
        x_test, y_test: test examples and labels; None: self-influence only.
        loss: a Keras loss, a loss name, a per-example callable, or None for the compiled loss
            of the model computed with (`model`, else the first checkpoint).
        learning_rates: eta_t, one per checkpoint; default 1 each.
        kind: "dot" or "cosine".
        top_k: if given, return only each test example's k highest-scoring training examples
            (proponents) and k lowest (opponents), computed without forming the [N, M]
            matrix (memory O(checkpoints x test factors + block x M)).
        block_size: training examples per block (default as `gradient_gram`).
        model: the model to load `.weights.h5` checkpoints into (and to compute with, if
            given). Its weights are restored afterwards; so are those of a checkpoint model.
        method: "auto", "ghost", "vmap" or "jacobian", as for `gradient_gram`.
        verbose: progress on stderr (default: after 5 seconds).

    Returns:
        A `TracInResult`; `scores` [N, M] without `top_k`, proponents and opponents with it,
        and always each example's self-influence `sum_t eta_t |g_t(x_i)|^2`.

    Raises:
        ValueError / TypeError: naming the argument, for an empty or malformed checkpoint
            list, checkpoints of different architectures or with non-finite weights, a wrong
            number of learning rates or a non-finite or negative one, an unknown kind, top_k
            outside [1, N], and anything `gradient_gram` refuses.

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model.compile(optimizer=keras.optimizers.SGD(0.1),
        ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> x, y = np.random.rand(30, 4).astype("float32"), np.arange(30) % 3
        >>> checkpoints = []
        >>> for epoch in range(3):
        ...     _ = model.fit(x, y, epochs=1, verbose=0)
        ...     checkpoints.append(keras.models.clone_model(model))
        ...     checkpoints[-1].set_weights(model.get_weights())
        >>> result = tfs.tracin(checkpoints, x, y, x[:4], y[:4], loss=model.loss,
        ...                     learning_rates=[0.1] * 3, top_k=2)
        >>> result.proponents.shape, result.self_influence.shape
        ((4, 2), (30,))
    """
    entries = checked_checkpoints(checkpoints)
    etas = ([1.0] * len(entries) if learning_rates is None
            else checked_learning_rates(learning_rates, len(entries)))
    if model is not None and not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a keras.Model or None, got {type(model).__name__}.")
    accumulator = TracInAccumulator(x, y, x_test, y_test, loss=loss, kind=kind, top_k=top_k,
                                    block_size=block_size, method=method, verbose=verbose)
    working, weights = load_checkpoints(entries, model, compile=loss is None)
    original = working.get_weights()
    try:
        for w, eta in zip(weights, etas):
            working.set_weights(w)
            accumulator.add(working, eta)
        return accumulator.result()
    finally:
        working.set_weights(original)


# ----------------------------------------------------------------------------- helpers


def _num_examples(x: Any, name: str) -> int:
    leaves = tf.nest.flatten(x)
    if not leaves or np.ndim(leaves[0]) == 0:
        raise ValueError(f"{name}: expected examples with a leading batch axis.")
    return len(leaves[0])


def _summed(by_layer: dict[str, Any]) -> np.ndarray:
    return sum(np.asarray(v, np.float64) for v in by_layer.values())


def _inverse_norms(sq_norms: np.ndarray) -> np.ndarray:
    return np.where(sq_norms > 0, 1.0 / np.sqrt(np.where(sq_norms > 0, sq_norms, 1.0)), 0.0)


# The engine names its second set x2 / y2 and the block size batch_size; here they are the
# test set and block_size.
_ENGINE_NAMES = {"x2": "x_test", "y2": "y_test", "batch_size": "block_size"}


@contextlib.contextmanager
def _named_arguments():
    try:
        yield
    except (ValueError, TypeError) as err:
        message = re.sub(r"\b(x2|y2|batch_size)\b", lambda m: _ENGINE_NAMES[m.group(1)],
                         str(err))
        if message == str(err):
            raise
        raise type(err)(message) from err
