"""TracIn checkpoints: checked, loaded and compared before any gradient is computed.

A checkpoint is a Keras model, a `.keras` file or a `.weights.h5` file (loaded into a given
model); every checkpoint of one TracIn sum must share one `architecture` and hold finite
weights, and each has a learning rate that is a finite number >= 0. `tracin`, the training
callback and the influence study all check and load checkpoints here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["architecture", "check_finite_weights", "check_same_architecture",
           "checked_checkpoints", "checked_learning_rate", "checked_learning_rates",
           "load_checkpoints"]


def architecture(model: keras.Model) -> list[tuple[str, tuple, str]]:
    """What two checkpoints must share: each layer's class and each weight's shape and dtype,
    in order (names are left out: Keras numbers them per process)."""
    layers = [(type(layer).__name__, (), "") for layer in
              model._flatten_layers(include_self=False, recursive=True)]
    weights = [("weight", tuple(w.shape), str(w.dtype)) for w in model.weights]
    return layers + weights


def checked_checkpoints(checkpoints: Any) -> list[keras.Model | str]:
    if isinstance(checkpoints, (str, os.PathLike, keras.Model)) or not isinstance(
            checkpoints, Sequence):
        raise TypeError("checkpoints: expected a list of Keras models or .keras / .weights.h5 "
                        f"paths, got {type(checkpoints).__name__}.")
    if len(checkpoints) == 0:
        raise ValueError("checkpoints: expected at least one checkpoint (a Keras model or a "
                         ".keras / .weights.h5 path), got an empty list.")
    entries = []
    for i, c in enumerate(checkpoints):
        if isinstance(c, keras.Model):
            entries.append(c)
            continue
        if not isinstance(c, (str, os.PathLike)):
            raise TypeError(f"checkpoints[{i}]: expected a Keras model or a path, got "
                            f"{type(c).__name__}.")
        path = os.fspath(c)
        if not path.endswith((".keras", ".weights.h5")):
            raise ValueError(f"checkpoints[{i}]: expected a path ending in .keras or "
                             f".weights.h5, got {path!r}.")
        if not os.path.isfile(path):
            raise ValueError(f"checkpoints[{i}]: no such file {path!r}.")
        entries.append(path)
    return entries


def load_checkpoints(entries: list, model: keras.Model | None, compile: bool):
    """(working model, [weights of each checkpoint]), every checkpoint checked against the
    working model's architecture and for finite weights before any gradient is computed."""
    needs_model = [i for i, e in enumerate(entries) if isinstance(e, str)
                   and e.endswith(".weights.h5")]
    if needs_model and model is None:
        raise ValueError(f"model: needed to load checkpoints[{needs_model[0]}] "
                         f"({entries[needs_model[0]]!r}); pass a model of the architecture "
                         "the weights were saved from.")
    working = model
    weights: list[list[np.ndarray]] = []
    original = None if model is None else model.get_weights()
    try:
        for i, entry in enumerate(entries):
            name = f"checkpoints[{i}]"
            if isinstance(entry, keras.Model):
                source = entry
            elif entry.endswith(".keras"):
                try:
                    source = keras.models.load_model(entry, compile=compile and working is None)
                except Exception as err:
                    raise ValueError(f"{name}: could not load {entry!r}: {err}") from err
            else:
                try:
                    model.load_weights(entry)
                except Exception as err:
                    raise ValueError(f"{name}: could not load {entry!r} into model: "
                                     f"{err}") from err
                source = model
            if working is None:
                working = source
            elif source is not working:
                check_same_architecture(architecture(source), architecture(working), name,
                                         "model" if model is not None else "checkpoints[0]")
            w = source.get_weights()
            check_finite_weights(source, w, name)
            weights.append(w)
    finally:
        if original is not None:
            model.set_weights(original)
    return working, weights


def check_same_architecture(got, expected, name: str, other: str) -> None:
    if got == expected:
        return
    for i, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            what = (f"layer {a[0]} where {other} has {b[0]}" if a[0] != b[0] else
                    f"a weight of shape {a[1]} ({a[2]}) where {other} has {b[1]} ({b[2]})")
            break
    else:
        what = f"{len(got)} layers and weights where {other} has {len(expected)}"
    raise ValueError(f"{name}: architecture differs from {other}'s: entry {i} is {what}.")


def check_finite_weights(model: keras.Model, weights: list[np.ndarray], name: str) -> None:
    for v, w in zip(model.weights, weights):
        if np.issubdtype(w.dtype, np.floating) and not np.all(np.isfinite(w)):
            raise ValueError(f"{name}: weight {v.path!r} contains NaN or inf.")


def checked_learning_rates(learning_rates: Any, count: int) -> list[float]:
    if isinstance(learning_rates, (str, bytes)) or not hasattr(learning_rates, "__len__"):
        raise TypeError(f"learning_rates: expected a sequence of {count} numbers, one per "
                        f"checkpoint, or None, got {type(learning_rates).__name__}.")
    if len(learning_rates) != count:
        raise ValueError(f"learning_rates: expected one per checkpoint ({count}), got "
                         f"{len(learning_rates)}.")
    return [checked_learning_rate(v, f"learning_rates[{i}]")
            for i, v in enumerate(learning_rates)]


def checked_learning_rate(value: Any, name: str) -> float:
    try:
        eta = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {value!r}.") from None
    if not math.isfinite(eta) or eta < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}.")
    return eta
