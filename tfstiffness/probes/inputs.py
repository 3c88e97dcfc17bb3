"""The probe sets' inputs and labels, checked: one array or a list / dict of arrays (a
multi-input model), settings (labels and counts through `tfstiffness.checks`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfstiffness import checks
from tfstiffness.engine import structure

__all__ = ["check_label_count", "checked_bootstrap_settings", "checked_classes",
           "checked_val_set", "describe_inputs", "probe_inputs"]


def probe_inputs(x: Any, name: str) -> Any:
    """The probe inputs: one array, or a list / dict of arrays (a multi-input model)."""
    def leaf(leaf_name: str, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"{leaf_name}: expected a numeric array [N, ...], got ragged or "
                            "mixed data.")
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"{leaf_name}: expected a non-empty array with a leading example "
                             "axis.")
        return array

    if isinstance(x, (list, tuple)) and not all(isinstance(v, (np.ndarray, dict)) or
                                                hasattr(v, "__array__") for v in x):
        x = np.asarray(x)  # a nested Python list of numbers: one array
    x = structure.map_named(leaf, x, name)
    lengths = {len(v) for v in structure.leaves(x)}
    if len(lengths) > 1:
        raise ValueError(f"{name}: every input needs the same number of examples, got "
                         f"{sorted(lengths)}.")
    return x


def describe_inputs(x: Any) -> str:
    """Each input's name, example shape and dtype, for messages."""
    return ", ".join(f"{name} {tuple(leaf.shape[1:])} {leaf.dtype}"
                     for name, leaf in structure.named_leaves(x, "x"))


def check_label_count(x: Any, y: np.ndarray, x_name: str, y_name: str) -> None:
    """Refuses labels `y` that are not one per example of `x`."""
    n = structure.num_examples(x)
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{y_name}: expected {n} labels (one per example of {x_name}), "
                         f"got shape {y.shape}.")




def checked_val_set(val_x: Any, val_y: Any, probe_x: Any,
                    probe_y: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """The second (held-out) probe set (None, None without one), checked against the first:
    the same structure, example shapes and dtypes, and label format."""
    if (val_x is None) != (val_y is None):
        raise ValueError("val_x, val_y: give both (a second probe set) or neither.")
    if val_x is None:
        return None, None
    val_x, val_y = probe_inputs(val_x, "val_x"), np.asarray(val_y)
    check_label_count(val_x, val_y, "val_x", "val_y")
    if structure.shapes_key(val_x) != structure.shapes_key(probe_x):
        raise ValueError("val_x: examples of another structure, shape or dtype than "
                         f"probe_x's ({describe_inputs(val_x)} vs {describe_inputs(probe_x)}).")
    if val_y.shape[1:] != probe_y.shape[1:]:
        raise ValueError(f"val_y: labels of shape {val_y.shape[1:]}, but probe_y "
                         f"has {probe_y.shape[1:]}; use the same format.")
    return val_x, val_y


def checked_bootstrap_settings(samples: Any, confidence: Any,
                               seed: Any) -> tuple[int, float, int]:
    """(samples, confidence, seed) of the bootstrap intervals, checked and converted."""
    if not checks.is_int(samples) or samples < 0:
        raise ValueError("bootstrap_samples: expected an integer >= 0 (0: no intervals), "
                         f"got {samples!r}.")
    if isinstance(confidence, bool) or not isinstance(
            confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError("bootstrap_confidence: expected a number in (0, 1), e.g. 0.95, "
                         f"got {confidence!r}.")
    if not checks.is_int(seed) or seed < 0:
        raise ValueError(f"bootstrap_seed: expected an integer >= 0, got {seed!r}.")
    return int(samples), float(confidence), int(seed)


def checked_classes(num_classes: int | None, fine_to_coarse: np.ndarray | None,
                    labels: np.ndarray, val_labels: np.ndarray | None) -> int:
    """The number of classes K (default `len(fine_to_coarse)`, else the largest label + 1),
    checked against the labels of both probe sets and against `fine_to_coarse`."""
    if num_classes is None and fine_to_coarse is not None:
        num_classes = len(fine_to_coarse)
    num_classes = checks.num_classes(num_classes, labels, val_labels, names=("probe_y", "val_y"))
    if fine_to_coarse is not None:
        if fine_to_coarse.shape != (num_classes,):
            raise ValueError(f"fine_to_coarse: expected {num_classes} entries (one "
                             f"per class), got shape {fine_to_coarse.shape}.")
        if not np.issubdtype(fine_to_coarse.dtype, np.integer):
            raise ValueError("fine_to_coarse: expected integer super-class indices.")
    return num_classes
