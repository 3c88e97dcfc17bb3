"""A data set split in memory (`LoadedData`) and class-balanced subsets of it.

Numpy only: what every loader returns, whichever source it read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LoadedData", "balanced_subset", "first_examples"]


@dataclass
class LoadedData:
    """A data set split in memory.

    Attributes:
        x: Inputs: float32 images [N, H, W, C], int32 token ids [N, sequence_length], or
            float32 features [N, D].
        y: int64 labels [N] (the fine labels for CIFAR-100).
        y_coarse: int64 super-class labels [N] for CIFAR-100 and ``hierarchical_images``
            (computed as ``fine_to_coarse[y]``), else None.
        class_names: Name of each label.
        coarse_names: Name of each super-class, or None.
        fine_to_coarse: int64 [num_classes] super-class of each label, or None.
        num_classes: Number of labels.
        name: The data set's name as given to `load`.
        split: The split loaded.
        vocabulary: For text, the token of each id (``vocabulary[0] == ""`` is padding,
            ``vocabulary[1] == "[UNK]"``); else None.
    """

    x: np.ndarray
    y: np.ndarray
    y_coarse: np.ndarray | None
    class_names: tuple[str, ...]
    coarse_names: tuple[str, ...] | None
    fine_to_coarse: np.ndarray | None
    num_classes: int
    name: str = ""
    split: str = ""
    vocabulary: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.y)



def balanced_subset(x: Any, y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of exactly ``per_class`` examples of every class, chosen by ``seed``.

    Classes are ``0 .. max(y)``; every one must have at least ``per_class`` examples. The
    same ``(y, per_class, seed)`` always gives the same indices. Returning indices (rather
    than arrays) lets one call select ``x``, ``y``, ``y_coarse`` or any parallel array.

    Args:
        x: The inputs, only checked to have as many examples as ``y`` (None skips the check).
        y: int labels [N].
        per_class: Examples to pick from each class.
        seed: Seed of the choice.

    Returns:
        int64 indices [num_classes * per_class], grouped by class (class 0 first), ascending
        within each class.

    Raises:
        ValueError: A class has fewer than ``per_class`` examples (message names it).

    Example:
        >>> balanced_subset(None, np.array([0, 1, 0, 1, 1, 0]), per_class=2, seed=0).shape
        (4,)
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected a 1-D integer label array, got {y.dtype} {y.shape}")
    if x is not None and len(x) != len(y):
        raise ValueError(f"x and y have different lengths: {len(x)} and {len(y)}")
    if per_class < 1:
        raise ValueError(f"per_class must be positive, got {per_class}")
    if len(y) == 0:
        raise ValueError("y is empty")
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(int(y.max()) + 1):
        members = np.flatnonzero(y == c)
        if len(members) < per_class:
            raise ValueError(
                f"per_class={per_class} but class {c} has only {len(members)} examples")
        picked.append(np.sort(rng.choice(members, size=per_class, replace=False)))
    return np.concatenate(picked).astype(np.int64)


def first_examples(loaded: LoadedData, count: int) -> LoadedData:
    """`loaded` cut to its first `count` examples (x, y and the super-class labels)."""
    coarse = None if loaded.y_coarse is None else loaded.y_coarse[:count]
    return dataclasses.replace(loaded, x=loaded.x[:count], y=loaded.y[:count], y_coarse=coarse)
