"""Checks on `gradient_gram`'s inputs before any heavy work, with errors that say what to fix."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness._generic import layer_key
from tfstiffness._losses import PerExampleLoss


def as_inputs(x: Any, argument: str) -> np.ndarray:
    """Converts `x` to an array with a batch axis, refusing NaN or inf."""
    if isinstance(x, dict):
        raise TypeError(f"{argument}: expected one array of inputs [N, ...]; multi-input "
                        "models are not supported.")
    array = np.asarray(x.numpy() if isinstance(x, tf.Tensor) else x)
    if array.dtype == object:
        raise TypeError(f"{argument}: expected one numeric array [N, ...], got ragged or "
                        "mixed data.")
    if array.ndim == 0:
        raise ValueError(f"{argument}: expected an array with a leading batch axis, got a scalar.")
    if array.shape[0] == 0:
        raise ValueError(f"{argument}: expected at least one example, got an empty array.")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            rows = np.unique(np.nonzero(bad.reshape(len(array), -1))[0])
            raise ValueError(
                f"{argument}: contains NaN or inf in {len(rows)} example(s) (first at index "
                f"{rows[0]}); stiffness of non-finite inputs is undefined."
            )
        if array.dtype == np.float64:
            array = array.astype(np.float32)
    return array


def check_lengths(x: np.ndarray, y: Any, x_name: str, y_name: str) -> None:
    if y is None:
        raise ValueError(f"{y_name}: labels are required with {x_name}.")
    if len(y) != len(x):
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of examples: "
            f"got {len(x)} inputs and {len(y)} labels."
        )


def check_input_shape(model: keras.Model, x: np.ndarray, argument: str) -> None:
    try:
        expected = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else None
    except (AttributeError, ValueError, TypeError):
        expected = None  # Subclassed or unbuilt: the probe forward pass checks instead.
    if expected is None:
        return
    got = x.shape[1:]
    if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise ValueError(
            f"{argument}: each example has shape {tuple(got)}, but the model expects "
            f"{tuple(expected)} (None = any size)."
        )


def probe_model(model: keras.Model, x: np.ndarray, argument: str) -> int | None:
    """Runs one example forward (building the model); returns the output width, if any."""
    try:
        out = model(x[:1], training=False)
    except Exception as err:
        raise ValueError(
            f"{argument}: examples of shape {tuple(x.shape[1:])} do not fit the model: {err}"
        ) from err
    if isinstance(out, (dict, list, tuple)):
        raise ValueError("model: expected a single output tensor; multi-output models are "
                         "not supported.")
    if not model.trainable_variables:
        raise ValueError("model: has no trainable variables, so every gradient is zero; "
                         "set some layers trainable.")
    return int(out.shape[-1]) if out.shape.rank and out.shape.rank >= 2 else None


def check_connected(model: keras.Model, loss_fn: PerExampleLoss, x: np.ndarray,
                    y: np.ndarray) -> None:
    """Raises naming every layer whose variables never receive a gradient from the loss."""
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(loss_fn(y[:2], model(x[:2], training=False)))
    grads = tape.gradient(loss, variables)
    dead = sorted({layer_key(v) for v, g in zip(variables, grads) if g is None})
    if dead:
        raise ValueError(
            "model: the loss does not depend on the trainable variables of layer(s) "
            f"{', '.join(repr(d) for d in dead)} (gradient None for every example); make them "
            "non-trainable (layer.trainable = False) or connect them to the output."
        )
