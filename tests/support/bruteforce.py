"""Independent reference: per-example gradients by a Python loop of `tape.gradient`.

Deliberately shares no code with the package beyond the model itself, so that every fast
path is checked against something it cannot share a bug with.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _layer_key(variable) -> str:
    return variable.path.rsplit("/", 1)[0]


def _one(tree, i):
    return tf.nest.map_structure(lambda a: a[i : i + 1], tree)


def per_example_gradients(model, loss_fn, x, y) -> dict[str, np.ndarray]:
    """Layer key -> [N, P_layer] float64 per-example gradients (training=False).

    x and y may be nested (lists or dicts of arrays), as the model and `loss_fn` take them.
    """
    variables = model.trainable_variables
    rows: dict[str, list[np.ndarray]] = {}
    for i in range(len(tf.nest.flatten(x)[0])):
        with tf.GradientTape() as tape:
            pred = model(_one(x, i), training=False)
            loss = tf.reduce_sum(loss_fn(_one(y, i), pred))
        grads = tape.gradient(loss, variables)
        flat: dict[str, list[np.ndarray]] = {}
        for v, g in zip(variables, grads):
            g = np.zeros(v.shape, np.float64) if g is None else np.asarray(tf.convert_to_tensor(g))
            flat.setdefault(_layer_key(v), []).append(g.reshape(-1).astype(np.float64))
        for key, parts in flat.items():
            rows.setdefault(key, []).append(np.concatenate(parts))
    return {key: np.stack(r) for key, r in rows.items()}


def brute_force_gram(model, loss_fn, x, y, x2=None, y2=None):
    """Returns (total [N, M], by_layer dict) in float64."""
    g1 = per_example_gradients(model, loss_fn, x, y)
    g2 = g1 if x2 is None else per_example_gradients(model, loss_fn, x2, y2)
    by_layer = {k: g1[k] @ g2[k].T for k in g1}
    return sum(by_layer.values()), by_layer


def relative_error(actual, expected) -> float:
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))
