"""Rules for layers that scale their input elementwise: ConvNeXt's LayerScale and PReLU.

Both have one weight `w` broadcast over the positions (and, for PReLU, its shared axes), so
example i's gradient is the output gradient times the input's factor, summed over the axes
that `w` is broadcast along: [n, size of w], materialised (a few hundred numbers per layer).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine.rules._registry import LayerCall, register


def _summed_to_weight(product: tf.Tensor, weight_shape: tuple) -> tf.Tensor:
    """Sums [n, ...] over the axes a weight of `weight_shape` is broadcast along, flattened."""
    rank = product.shape.rank
    lead = rank - 1 - len(weight_shape)  # position axes in front of the weight's own
    axes = list(range(1, 1 + lead)) + [1 + lead + i for i, size in enumerate(weight_shape)
                                       if size == 1 and product.shape[1 + lead + i] != 1]
    summed = tf.reduce_sum(product, axis=axes, keepdims=False) if axes else product
    return tf.reshape(summed, [tf.shape(product)[0], -1])


def _per_example(layer, calls: list[LayerCall], input_factor) -> list[_factors.Factor]:
    weight = layer.trainable_variables[0]
    total = tf.add_n([_summed_to_weight(input_factor(c.args[0]) * c.grad, tuple(weight.shape))
                      for c in calls])
    return [_factors.Materialized(total)]


def layer_scale_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    """`z = x * gamma`: `dgamma_i = sum over positions of x_i * b_i`."""
    return _per_example(layer, calls, lambda x: x)


def prelu_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    """`z = relu(x) - alpha * relu(-x)`: `dalpha_i = -relu(-x_i) * b_i`, summed over the
    shared axes."""
    return _per_example(layer, calls, lambda x: -tf.nn.relu(-x))


def _layer_scale_class():
    # keras.applications' ConvNeXt defines it without exporting it.
    try:
        from keras.src.applications.convnext import LayerScale
    except ImportError:
        return None
    return LayerScale


def _trainable(layer) -> bool:
    return len(layer.trainable_variables) == 1


register(keras.layers.PReLU, prelu_rule, applies=_trainable)
if _layer_scale_class() is not None:
    register(_layer_scale_class(), layer_scale_rule, applies=_trainable)
