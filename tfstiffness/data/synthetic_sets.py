"""The package's synthetic sets through `load`: three disjoint splits drawn from one structure
(the same class prototypes), standardised by their training split (see `load`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfstiffness.data import synthetic
from tfstiffness.data.loaded_data import LoadedData

__all__ = ["SYNTHETIC_SETS", "SYNTHETIC_SPLITS", "load_synthetic"]

SYNTHETIC_SETS = ("hierarchical_images", "two_arcs", "gaussian_blobs", "synthetic_text")
SYNTHETIC_SPLITS = ("train", "validation", "test")


def _split_position(split: str) -> int:
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"split: synthetic data sets have splits {SYNTHETIC_SPLITS}, "
                         f"got {split!r}")
    return SYNTHETIC_SPLITS.index(split)


def _every_third_per_class(y: np.ndarray, position: int) -> np.ndarray:
    keep = np.zeros(len(y), bool)
    for c in np.unique(y):
        keep[np.flatnonzero(y == c)[position::3]] = True
    return np.flatnonzero(keep)  # Keeps the generator's (shuffled) order.


def _numbered_names(names: str, count: int) -> tuple[str, ...]:
    """("class_0", "class_1", ...) for names "class"."""
    return tuple(f"{names}_{i}" for i in range(count))


def load_synthetic(name: str, split: str, seed: int, vocab_size: int | None,
                   sequence_length: int | None, kwargs: dict[str, Any],
                   normalize: bool = True) -> LoadedData:
    """One split of a synthetic set (`SYNTHETIC_SETS`), drawn by `synthetic` with `kwargs`:
    every third example of each class per split, from one draw of three times the size."""
    position = _split_position(split)
    common = {"name": name, "split": split, "y_coarse": None, "coarse_names": None,
              "fine_to_coarse": None}
    if name == "two_arcs":
        x, y = synthetic.two_arcs_grid(**kwargs)
        return LoadedData(x=x, y=y, class_names=("arc_0", "arc_1"), num_classes=2, **common)
    if name == "synthetic_text":
        kwargs = {"num_examples": 1000, "num_classes": 2, **kwargs}
        per_split = kwargs.pop("num_examples")
        tokens, y = synthetic.synthetic_text(
            3 * per_split, vocab_size=vocab_size or 100, sequence_length=sequence_length or 32,
            seed=seed, **kwargs)
        # Examples are i.i.d. given the (fixed) indicative tokens: every third one per split.
        return LoadedData(x=tokens[position::3], y=y[position::3],
                          class_names=_numbered_names("class", kwargs["num_classes"]),
                          num_classes=kwargs["num_classes"], **common)
    if name == "gaussian_blobs":
        kwargs = {"num_classes": 3, "num_per_class": 100, "dim": 2, "spread": 0.5, **kwargs}
        kwargs["num_per_class"] *= 3
        x, y = synthetic.gaussian_blobs(seed=seed, **kwargs)
        x = _standardized_by_train_split(x, y) if normalize else x
        keep = _every_third_per_class(y, position)
        return LoadedData(x=x[keep], y=y[keep],
                          class_names=_numbered_names("blob", kwargs["num_classes"]),
                          num_classes=kwargs["num_classes"], **common)
    # hierarchical_images
    kwargs = {"num_per_class": 50, "num_superclasses": 20, "classes_per_superclass": 5, **kwargs}
    fine_to_coarse = synthetic.hierarchical_fine_to_coarse(
        kwargs["num_superclasses"], kwargs["classes_per_superclass"])
    kwargs["num_per_class"] *= 3
    x, y, y_coarse = synthetic.hierarchical_images(seed=seed, **kwargs)
    x = _standardized_by_train_split(x, y) if normalize else x
    keep = _every_third_per_class(y, position)
    return LoadedData(
        x=x[keep], y=y[keep], y_coarse=y_coarse[keep],
        class_names=_numbered_names("class", len(fine_to_coarse)),
        coarse_names=_numbered_names("superclass", kwargs["num_superclasses"]),
        fine_to_coarse=fine_to_coarse, num_classes=len(fine_to_coarse), name=name, split=split)


def _standardized_by_train_split(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x standardised per channel (last axis) with the mean and std of the train split."""
    train = x[_every_third_per_class(y, SYNTHETIC_SPLITS.index("train"))]
    axes = tuple(range(train.ndim - 1))
    mean = train.mean(axis=axes, dtype=np.float64)
    std = train.std(axis=axes, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)  # A constant channel is only centred.
    return ((x - mean) / std).astype(np.float32)
