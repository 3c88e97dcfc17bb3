"""Recurrent layers (SimpleRNN, GRU, LSTM; Bidirectional through its two layers).

Per-example gradients by a vectorised VJP through the layer alone, as for normalisations,
with the recurrence unrolled for that VJP: `tf.vectorized_map` cannot differentiate through
TensorFlow's while loop (pfor fails on its `variant` tensors), and through the unrolled
steps it can. The model's own forward pass is untouched. A `go_backwards` layer is run
forwards on time-reversed inputs and mask, which is what it computes: Keras' unrolled
`go_backwards` path misaligns the mask of the zeroed outputs, so it is not used.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfstiffness.engine import _factors
from tfstiffness.engine.rules._normalization import vjp_factors
from tfstiffness.engine.rules._registry import LayerCall, register


def _unrolled_call(layer):
    def call(sequences, *args, **kwargs):
        backwards = layer.go_backwards
        if backwards:
            sequences = tf.reverse(sequences, [1])
            if kwargs.get("mask") is not None:
                kwargs["mask"] = tf.reverse(kwargs["mask"], [1])
        saved = layer.unroll, layer.go_backwards
        layer.unroll, layer.go_backwards = True, False
        try:
            return type(layer).call(layer, sequences, *args, **kwargs)
        finally:
            layer.unroll, layer.go_backwards = saved

    return call


def recurrent_rule(layer, calls: list[LayerCall]) -> list[_factors.Factor]:
    return vjp_factors(layer, calls, _unrolled_call(layer))


def _applies(layer) -> bool:
    # Stateful layers carry state across batches; time-major inputs would need another axis.
    return not layer.stateful and not getattr(layer, "time_major", False)


for _cls in (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM):
    register(_cls, recurrent_rule, applies=_applies)
