"""Few-parameter layers (normalisations): per-example gradients by a VJP through the layer.

With the layer's recorded inputs and output gradient, example i's gradient is the VJP of
`layer(input_i)` with `grad_i`: exact by construction, reusing the layer's own code, and
vectorised over the examples, so it costs about one more pass through this layer alone.
(A Jacobian over the block would cost O(block^2): pfor would redo the block's backward pass
per example.)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine.rules._registry import LayerCall, register, rule_for


def _has_batch(value, n: int) -> bool:
    """A tensor, or a nest of them (e.g. initial states), whose first axis is the batch."""
    parts = tf.nest.flatten(value)
    return bool(parts) and all(tf.is_tensor(t) and bool(t.shape.rank) and t.shape[0] == n
                               for t in parts)


def _one(value):
    return tf.nest.map_structure(lambda t: t[None], value)


def per_example_vjp(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    """A rule for any layer that treats examples independently and has few parameters:
    its per-example gradients [n, P], materialised by a vectorised VJP through the layer.

    Tensor arguments whose first axis is the batch are split per example, the rest are
    passed whole. Not for layers through which `tf.vectorized_map` cannot differentiate
    (TensorFlow while loops, e.g. recurrent layers: see `_recurrent`).
    """
    return vjp_factors(layer, calls, type(layer).call.__get__(layer))


def vjp_factors(layer, calls: list[LayerCall], call) -> list[_factors.Factor]:
    """`per_example_vjp` through `call(*args, **kwargs)`, a stand-in for the layer's call."""
    variables = layer.trainable_variables
    watch = rule_for(layer).watch
    total = None
    for c in calls:
        grads = tf.nest.flatten(c.grad)
        n = grads[0].shape[0]
        split_args = [i for i, a in enumerate(c.args) if _has_batch(a, n)]
        split_kwargs = {k: v for k, v in c.kwargs.items() if _has_batch(v, n)}

        def one_example(sliced, c=c, split_args=split_args):
            a, kw, grad = sliced
            full_args = list(c.args)
            for i, value in zip(split_args, a):
                full_args[i] = _one(value)
            full_kwargs = {**c.kwargs, **{k: _one(v) for k, v in kw.items()}}
            with tf.GradientTape() as tape:
                _, watched = watch(layer, call, tuple(full_args), full_kwargs)
            per_variable = tape.gradient(tf.nest.flatten(watched), variables,
                                         output_gradients=[g[None] for g in grad],
                                         unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return tf.concat([tf.reshape(g, [-1]) for g in per_variable], 0)

        flat = tf.vectorized_map(one_example, ([c.args[i] for i in split_args], split_kwargs,
                                                 grads))
        total = flat if total is None else total + flat
    return [_factors.Materialized(total)]


for _cls in (keras.layers.LayerNormalization, keras.layers.BatchNormalization,
             keras.layers.GroupNormalization, getattr(keras.layers, "RMSNormalization", None)):
    if _cls is not None:
        register(_cls, per_example_vjp)
