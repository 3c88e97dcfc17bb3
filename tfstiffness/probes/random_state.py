"""Measuring leaves training's random draws alone: the global random states (NumPy, Python,
TensorFlow's eager op seeds, Keras' global seed generator) are restored after it."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["random_state_preserved"]


@contextlib.contextmanager
def random_state_preserved() -> Iterator[None]:
    """Restores the global random states on exit, so measuring never shifts training's draws.

    Nothing in a measurement is meant to draw random numbers, but a user's model may (e.g. a
    layer calling `keras.random.*` without a seed), and a measurement that moved the NumPy or
    Python state would change a data pipeline that shuffles with them.
    """
    import keras

    numpy_state, python_state = np.random.get_state(), random.getstate()
    # TensorFlow's eager op-seed stream (private; absent when no global seed is set).
    tf_context = _tf_context()
    tf_rng = getattr(tf_context, "_rng", None)
    tf_state = tf_rng.getstate() if tf_rng is not None else None
    keras_generator = _keras_global_seed_generator()
    keras_state = (None if keras_generator is None
                   else keras.ops.convert_to_numpy(keras_generator.state))
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
        if tf_rng is not None and getattr(tf_context, "_rng", None) is tf_rng:
            tf_rng.setstate(tf_state)
        if keras_generator is not None:
            keras_generator.state.assign(keras_state)


def _tf_context() -> Any:
    try:
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover - layout of a future TensorFlow
        return None
    return context.context()


def _keras_global_seed_generator() -> Any:
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    except ImportError:  # pragma: no cover - layout of a future Keras
        return None
    return global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
