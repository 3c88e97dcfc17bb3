"""Turns the `loss` argument into a per-example loss function, and labels into what it expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

PerExampleLoss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

_SPARSE = ("sparse_categorical_crossentropy",)
_DENSE = ("categorical_crossentropy",)


def _loss_name(loss: Any) -> str:
    fn = getattr(loss, "fn", loss)  # LossFunctionWrapper keeps the plain function in `.fn`.
    return getattr(fn, "__name__", getattr(loss, "name", type(loss).__name__))


def resolve_loss(loss: Any, model: keras.Model) -> tuple[PerExampleLoss, str]:
    """Returns (per-example loss fn, label kind) with label kind "sparse", "one_hot" or "any".

    A Keras loss object is used through `.call`, which skips the batch reduction; a string
    goes through `keras.losses.get`; `None` takes the compiled model's loss.
    """
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "loss: the model is not compiled with a loss, so one must be passed, e.g. "
                "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )
    if isinstance(loss, (dict, list, tuple)):
        raise ValueError(
            f"loss: expected one loss for a single-output model, got {type(loss).__name__}; "
            "multi-output models are not supported."
        )
    if isinstance(loss, str):
        try:
            fn = keras.losses.get(loss)
        except ValueError as err:
            raise ValueError(f"loss: unknown loss name {loss!r}.") from err
    elif isinstance(loss, keras.losses.Loss):
        fn = loss.call
    elif callable(loss):
        fn = loss
    else:
        raise TypeError(
            "loss: expected a keras.losses.Loss, a loss name or a callable "
            f"(y_true, y_pred) -> per-example loss, got {type(loss).__name__}."
        )
    name = _loss_name(loss)
    kind = "sparse" if name in _SPARSE else "one_hot" if name in _DENSE else "any"

    def per_example(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        values = tf.convert_to_tensor(fn(y_true, y_pred))
        if values.shape.rank == 0:
            raise ValueError(
                "loss: must return one value per example (use reduction=None for Keras losses), "
                "got a scalar."
            )
        # Per-token or per-pixel losses: an example's loss is their mean, as Keras reduces them.
        return tf.reshape(tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), 1), [-1])

    return per_example, kind


def prepare_labels(y: Any, kind: str, num_outputs: int | None, argument: str) -> np.ndarray:
    """Checks labels against the loss and the model's outputs; converts integer <-> one-hot."""
    y = np.asarray(y)
    if kind == "any" or num_outputs is None:
        return y
    integer_like = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and num_outputs > 1)
    if integer_like:
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise ValueError(
                    f"{argument}: expected integer class labels, got {y.dtype} values.")
        y = y.reshape(-1).astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= num_outputs):
            raise ValueError(
                f"{argument}: labels must lie in [0, {num_outputs}) for a model with "
                f"{num_outputs} outputs; got values in [{y.min()}, {y.max()}]."
            )
        return y if kind == "sparse" else np.eye(num_outputs, dtype=np.float32)[y]
    if y.ndim == 2 and y.shape[1] == num_outputs:
        return y.argmax(1).astype(np.int64) if kind == "sparse" else y.astype(np.float32)
    raise ValueError(
        f"{argument}: expected integer labels of shape [N] or one-hot labels of shape "
        f"[N, {num_outputs}], got shape {list(y.shape)}."
    )
