"""Argument checks shared by every folder of the package (numpy only, no TensorFlow).

One implementation of each check, so that the same bad value gets the same answer wherever it
is passed: positive integers, class labels as integer class indices, the number of classes,
finite arrays, matrices and squared gradient norms. Each check raises with a message that
names the argument and says what was expected. The convention: a value of the wrong type
raises TypeError, a value of the right type that is out of range raises ValueError; the
positive-integer check raises ValueError for both, as the public functions that use it
document.

Example:
    >>> positive_int(3, "block_size")
    3
    >>> class_labels(np.array([[0.0, 1.0], [1.0, 0.0]]), "y")
    array([1, 0])
    >>> num_classes(None, np.array([0, 2]))
    3
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["class_indices", "class_labels", "finite_array", "float_matrix", "is_int",
           "is_positive_int", "label_range", "num_classes", "positive_int", "squared_norms"]

# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    """Whether `value` is an integer: a Python or numpy int, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_positive_int(value: Any) -> bool:
    """Whether `value` is an integer (see `is_int`) >= 1."""
    return is_int(value) and value >= 1


def positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """`value` as an int, or a ValueError naming `name` when it is not a positive integer.

    Args:
        value: the argument to check.
        name: the argument's name, for the message.
        allow_none: whether None is accepted (and returned) as well.

    Returns:
        `int(value)`, or None when `allow_none` and `value` is None.

    Raises:
        ValueError: `value` is not an int >= 1 (a bool, a float or a string included).

    Example:
        >>> positive_int(0, "workers")
        Traceback (most recent call last):
        ...
        ValueError: workers: expected a positive integer, got 0.
    """
    if allow_none and value is None:
        return None
    if not is_positive_int(value):
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{name}: expected {expected}, got {value!r}.")
    return int(value)


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------


def finite_array(values: Any, name: str) -> np.ndarray:
    """`values` as an array, refusing NaN and inf with the count and the first bad index.

    Args:
        values: an array (any shape).
        name: the argument's name, for the message.

    Returns:
        `np.asarray(values)`.

    Raises:
        ValueError: `values` holds a NaN or inf.

    Example:
        >>> finite_array([1.0, float("nan")], "sq_norms")
        Traceback (most recent call last):
        ...
        ValueError: sq_norms holds 1 non-finite value(s) (NaN or inf), the first at index 1: \
measures of non-finite values are undefined. Find where they arise (a diverging fit or \
overflowing inputs give NaN gradients) or leave those examples out.
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    first = np.unravel_index(int(np.argmax(bad)), bad.shape)
    where = int(first[0]) if len(first) == 1 else tuple(int(i) for i in first)
    raise ValueError(
        f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index "
        f"{where}: measures of non-finite values are undefined. Find where they arise (a "
        "diverging fit or overflowing inputs give NaN gradients) or leave those examples out."
    )


def float_matrix(values: Any, name: str) -> np.ndarray:
    """`values` as a float64 2-D array, or a ValueError naming `name` and the shape."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {values.shape}")
    return values


def squared_norms(values: Any, length: int, name: str) -> np.ndarray:
    """Squared gradient norms, one per example: float64, finite and >= 0.

    Args:
        values: [length] squared norms.
        length: the number of examples they belong to.
        name: the argument's name, for the message.

    Returns:
        [length] float64 array.

    Raises:
        ValueError: a wrong shape, a NaN or inf, or a negative value.
    """
    norms = np.asarray(values, dtype=np.float64)
    if norms.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), one squared norm per example, "
                         f"got {norms.shape}")
    finite_array(norms, name)
    if np.any(norms < 0):
        raise ValueError(f"{name} holds squared norms, which cannot be negative")
    return norms


# --------------------------------------------------------------------------------------------
# Class labels and the number of classes
# --------------------------------------------------------------------------------------------


def class_indices(
    labels: Any, name: str, length: int | None = None, axis: str = "rows"
) -> np.ndarray:
    """Class indices as they are: a 1-D integer array, nothing coerced (the measures' input).

    Args:
        labels: [N] integer class of each example.
        name: the argument's name, for the message.
        length: N, the number of `axis` of the stiffness matrix S the labels go with.
        axis: "rows" or "columns", for the message.

    Returns:
        [N] int64 array (range unchecked: see `num_classes`).

    Raises:
        ValueError: not 1-D (e.g. one-hot), not integers, or not `length` entries.
    """
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of integer classes (argmax one-hot labels first), "
            f"got shape {values.shape}"
        )
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {values.dtype}")
    if length is not None and values.size != length:
        raise ValueError(f"{name} has {values.size} entries but S has {length} {axis}")
    return values.astype(np.int64)


def class_labels(y: Any, name: str) -> np.ndarray:
    """Class indices of labels as a classifier's loss takes them: integers or one-hot.

    [N, K] one-hot (or probability) rows give their argmax; [N] or [N, 1] whole numbers, of
    any numeric dtype, give themselves.

    Args:
        y: [N] or [N, 1] class labels, or [N, K] one-hot labels.
        name: the argument's name, for the message.

    Returns:
        [N] int64 class indices (range unchecked: see `num_classes`).

    Raises:
        TypeError: labels that are not numbers (class names, say).
        ValueError: another shape, or numbers that are not whole.

    Example:
        >>> class_labels(np.array([2.0, 0.0]), "y")
        array([2, 0])
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected integer class labels, got {y.dtype} values; "
                        "map class names to integer ids first.")
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1).astype(np.int64)
    if y.ndim == 0 or y.reshape(len(y), -1).shape[1] != 1:
        raise ValueError(f"{name}: expected [N] class labels or [N, K] one-hot labels, got "
                         f"shape {y.shape}.")
    y = y.reshape(-1)
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{name}: expected integer class labels or one-hot labels, got "
                         f"{y.dtype} values that are not whole numbers.")
    return class_indices(y.astype(np.int64), name)


def num_classes(
    value: Any,
    labels: np.ndarray,
    labels2: np.ndarray | None = None,
    names: tuple[str, str] = ("labels", "labels2"),
) -> int:
    """The number of classes K: `value`, or the largest label + 1; every label in [0, K).

    Args:
        value: K as given by the user, or None to take it from the labels.
        labels: [N] int class indices (from `class_indices` or `class_labels`).
        labels2: [M] class indices of a second set, or None.
        names: the names of `labels` and `labels2`, for the messages.

    Returns:
        K as a Python int.

    Raises:
        TypeError: `value` is not an int (a bool or a float included).
        ValueError: `value` < 1; None with no labels at all; a label outside [0, K).

    Example:
        >>> num_classes(2, np.array([0, 1, 2]))
        Traceback (most recent call last):
        ...
        ValueError: labels must lie in [0, 2), got values from 0 to 2 (num_classes: 2 is too \
small for labels up to 2; pass num_classes >= 3 or None)
    """
    sets = [(labels, names[0])] + ([] if labels2 is None else [(labels2, names[1])])
    if value is None:
        if all(s.size == 0 for s, _ in sets):
            raise ValueError("num_classes is needed when there are no labels")
        value = max(int(s.max(initial=0)) for s, _ in sets) + 1
    elif not is_int(value):
        raise TypeError(f"num_classes must be a positive int, got {value!r}")
    elif value < 1:
        raise ValueError(f"num_classes must be a positive int, got {value}")
    for values, name in sets:
        label_range(values, int(value), name)
    return int(value)


def label_range(labels: np.ndarray, num_classes: int, name: str) -> None:
    """Refuses a class index outside [0, num_classes), naming `labels` by `name`."""
    if not labels.size:
        return
    low, high = labels.min(), labels.max()
    if low >= 0 and high < num_classes:
        return
    message = f"{name} must lie in [0, {num_classes}), got values from {low} to {high}"
    if high >= num_classes:
        message += (f" (num_classes: {num_classes} is too small for labels up to {high}; pass "
                    f"num_classes >= {high + 1} or None)")
    raise ValueError(message)
