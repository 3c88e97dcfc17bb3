"""Generic per-example gradients: `tf.vectorized_map` over a per-example tape, or `tape.jacobian`.

Works for any model; the structured path uses it for the variables its rules do not cover.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from tfstiffness.engine import _factors, structure
from tfstiffness.engine.layer_keys import group_by_layer

# oneDNN's kernels abort the process (silently) when pfor vectorises per-example gradients
# through attention einsums; they read this variable once, when TensorFlow is imported.
_ONEDNN_ON = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")
_ONEDNN_UNSAFE_LAYERS = ("MultiHeadAttention", "EinsumDense", "GroupedQueryAttention")
# tape.jacobian vectorises the block's backward pass once per example, so its cost grows with
# the square of the block: it runs on chunks of this many examples.
JACOBIAN_CHUNK = 16


def vmap_unsafe_layers(model: keras.Model) -> dict[str, list[str]]:
    """Layers through which `tf.vectorized_map` fails here, by reason (empty when none).

    "onednn": attention einsums, which abort the process while oneDNN is on; "recurrent":
    RNN layers, whose while loop pfor cannot vectorise (a `variant` dtype TypeError).
    """
    found: dict[str, list[str]] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN):
            found.setdefault("recurrent", []).append(layer.name)
        elif _ONEDNN_ON and type(layer).__name__ in _ONEDNN_UNSAFE_LAYERS:
            found.setdefault("onednn", []).append(layer.name)
    return found


def jacobian_unsafe_layers(model: keras.Model) -> list[str]:
    """Layers through which `tape.jacobian` gives wrong per-example gradients here.

    Grouped convolutions (`groups > 1`, e.g. ConvNeXt's depthwise convolutions): TensorFlow's
    jacobian through a grouped conv is wrong with oneDNN on (2e-1 relative error on a small
    net, no warning) and fails without it. `tf.vectorized_map` and the ghost rules are exact.
    """
    return [layer.name for layer in model._flatten_layers(include_self=False, recursive=True)
            if getattr(layer, "groups", 1) > 1 and hasattr(layer, "kernel_size")]


def _flat(gradient, variable) -> tf.Tensor:
    if gradient is None:
        return tf.zeros([int(tf.size(variable))], variable.dtype)
    return tf.reshape(tf.convert_to_tensor(gradient), [-1])


def _batch_of_one(tree):
    return tf.nest.map_structure(lambda t: t[None], tree)


class PerExampleGradients:
    """Callable `(x_block, y_block) -> {layer key: Materialized}` for the given variables.

    x and y may be nested (lists or dicts of arrays). The jacobian method runs on chunks of
    `JACOBIAN_CHUNK` examples, so that its cost stays linear in the block.
    """

    def __init__(self, model: keras.Model, loss_fn, variables: Sequence, method: str):
        if method not in ("vmap", "jacobian"):
            raise ValueError(f"method: expected 'vmap' or 'jacobian', got {method!r}.")
        self.model, self.loss_fn, self.variables = model, loss_fn, list(variables)
        self.method = method
        self.groups = group_by_layer(self.variables)
        # Blocks are padded to one size, so each function is traced once per input structure.
        body = PerExampleGradients._vmap if method == "vmap" else PerExampleGradients._jacobian
        self._fn = tf.function(functools.partial(body, self))  # traces counted per instance

    def _vmap(self, x, y):
        def one_example(args):
            xi, yi = args
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(self.loss_fn(_batch_of_one(yi),
                                                  self.model(_batch_of_one(xi), training=False)))
            grads = tape.gradient(loss, self.variables)
            return [_flat(g, v) for g, v in zip(grads, self.variables)]

        return tf.vectorized_map(one_example, (x, y))

    def _jacobian(self, x, y):
        with tf.GradientTape() as tape:
            losses = self.loss_fn(y, self.model(x, training=False))
        # Unconnected variables (a head whose loss is None) are zeros here: the jacobian's own
        # UnconnectedGradients.ZERO fails on Keras variables (their dtype is a string).
        jac = tape.jacobian(losses, self.variables)
        n = tf.shape(losses)[0]
        return [tf.zeros([n, int(tf.size(v))], losses.dtype) if j is None
                else tf.reshape(tf.convert_to_tensor(j), [n, -1])
                for j, v in zip(jac, self.variables)]

    def __call__(self, x, y) -> dict[str, _factors.Materialized]:
        n = structure.num_examples(x)
        if self.method == "jacobian" and n > JACOBIAN_CHUNK:
            chunks = []
            for start in range(0, n, JACOBIAN_CHUNK):
                rows = slice(start, min(n, start + JACOBIAN_CHUNK))
                part = self._fn(*(structure.pad_rows(structure.take(t, rows), JACOBIAN_CHUNK)
                                  for t in (x, y)))
                chunks.append([g[:rows.stop - rows.start] for g in part])
            per_variable = [tf.concat(parts, 0) for parts in zip(*chunks)]
        else:
            per_variable = self._fn(x, y)
        return {
            key: _factors.Materialized(tf.concat([per_variable[i] for i in idx], axis=1))
            for key, idx in self.groups.items()
        }

    def bytes_per_example(self) -> int:
        return 4 * sum(int(tf.size(v)) for v in self.variables)
