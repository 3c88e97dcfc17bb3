"""Rules for embedding tables: lookups, tied output projections, position tables.

A lookup `out_t = E[tok_t]` gives example i the table gradient `sum_t onehot(tok_it) (x)
b_it`; a projection `logits = h E^T` (a tied output layer) gives `sum_s lg_is (x) h_is`.
Both are sums over positions of outer products, so a table used both ways is one linear
factor with the lookups' one-hot rows and the projections' logit gradients side by side:
exact, cross terms included.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine.rules._linear import plain
from tfstiffness.engine.rules._registry import LayerCall, batch_rows, concat_positions, register


def _lookup_parts(calls: list[LayerCall]) -> tuple[tf.Tensor, tf.Tensor]:
    tokens = concat_positions([tf.reshape(c.args[0], [tf.shape(c.args[0])[0], -1])
                               for c in calls])
    return tf.cast(tokens, tf.int32), concat_positions([batch_rows(c.grad) for c in calls])


def embedding_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    tokens, b = _lookup_parts(calls)
    return [_factors.embedding_factor(tokens, b, layer.input_dim)]


def _is_reverse(args: tuple, kwargs: dict) -> bool:
    reverse = kwargs.get("reverse", args[1] if len(args) > 1 else False)
    if tf.is_tensor(reverse):
        raise ValueError("ReversibleEmbedding: `reverse` must be a Python bool for the ghost "
                         "path, got a tensor.")
    return bool(reverse)


def watch_reversible(layer, call, args, kwargs):
    """Watches the logits before the optional soft cap `tanh(l / cap) * cap`."""
    cap = getattr(layer, "logit_soft_cap", None)
    if not _is_reverse(args, kwargs) or cap is None:
        output = call(*args, **kwargs)
        return output, output
    layer.logit_soft_cap = None
    try:
        logits = call(*args, **kwargs)
    finally:
        layer.logit_soft_cap = cap
    return keras.ops.multiply(keras.ops.tanh(keras.ops.divide(logits, cap)), cap), logits


def _table_factor(tokens, g, logit_grads, h, vocab: int) -> _factors.Factor:
    """A table [V, D] used by lookups (tokens [n, T], g [n, T, D]) and by projections
    `logits = h E^T` (logit_grads [n, S, V], h [n, S, D]): one factor for the sum."""
    positions, dim = tokens.shape[1] + h.shape[1], h.shape[-1]
    if _factors.pairwise_is_cheaper(positions, vocab, dim):
        one_hot = tf.one_hot(tokens, vocab, dtype=logit_grads.dtype)
        return _factors.Outer(tf.concat([one_hot, logit_grads], 1), tf.concat([g, h], 1))
    n = tf.shape(tokens)[0]
    rows = tokens + vocab * tf.range(n)[:, None]
    lookups = tf.math.unsorted_segment_sum(tf.reshape(g, [-1, dim]), tf.reshape(rows, [-1]),
                                           n * vocab)
    table = tf.einsum("nsv,nsd->nvd", logit_grads, h) + tf.reshape(lookups, [-1, vocab, dim])
    return _factors.Materialized(tf.reshape(table, [-1, vocab * dim]))


def reversible_embedding_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    lookups = [c for c in calls if not _is_reverse(c.args, c.kwargs)]
    projections = [c for c in calls if _is_reverse(c.args, c.kwargs)]
    factors: list[_factors.Factor] = []
    if projections:
        h = concat_positions([batch_rows(c.args[0]) for c in projections])
        logit_grads = concat_positions([batch_rows(c.grad) for c in projections])
        if layer.tie_weights and lookups:
            return [_table_factor(*_lookup_parts(lookups), logit_grads, h, layer.input_dim)]
        if layer.tie_weights:  # embeddings [V, D], logits = h E^T
            return [_factors.linear_factor(logit_grads, h)]
        factors.append(_factors.linear_factor(h, logit_grads))  # reverse_embeddings [D, V]
    if lookups:
        factors.insert(0, embedding_rule(layer, lookups)[0])
    return factors


def position_embedding_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    """keras_hub's PositionEmbedding: rows `start_index + t` (or `positions`) of a
    [sequence_length, D] table, broadcast to the input's shape."""
    length = layer.sequence_length
    spans, grads, ids = [], [], []
    for c in calls:
        grad = c.grad
        if grad.shape.rank > 3:  # broadcast over extra leading axes: their gradients add
            grad = tf.reduce_sum(grad, axis=list(range(1, grad.shape.rank - 2)))
        t = grad.shape[1]
        start = c.kwargs.get("start_index", c.args[1] if len(c.args) > 1 else 0)
        positions = c.kwargs.get("positions", c.args[2] if len(c.args) > 2 else None)
        grads.append(grad)
        if positions is None and isinstance(start, int):
            spans.append((start, start + t))
        if positions is not None:
            positions = tf.broadcast_to(tf.cast(positions, tf.int32), [tf.shape(grad)[0], t])
        else:
            positions = tf.broadcast_to(tf.cast(start, tf.int32) + tf.range(t, dtype=tf.int32),
                                        [tf.shape(grad)[0], t])
        ids.append(positions)
    if len(spans) == len(calls):
        # Static rows, the same for every example: only rows [lo, hi) can be non-zero.
        lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
        table = tf.add_n([tf.pad(g, [[0, 0], [s - lo, hi - e], [0, 0]])
                          for g, (s, e) in zip(grads, spans)])
        return [_factors.Materialized(tf.reshape(table, [-1, (hi - lo) * table.shape[-1]]))]
    return [_factors.embedding_factor(concat_positions(ids), concat_positions(grads), length)]


register(keras.layers.Embedding, embedding_rule, applies=plain)
if hasattr(keras.layers, "ReversibleEmbedding"):  # not in older Keras 3 releases
    register(keras.layers.ReversibleEmbedding, reversible_embedding_rule, applies=plain,
             watch=watch_reversible)
