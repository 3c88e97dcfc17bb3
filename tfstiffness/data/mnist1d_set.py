"""MNIST-1D (Greydanus 2020): the standard 4,000 / 1,000 split, generated offline from its
templates by the ``mnist1d`` package, once per process."""

from __future__ import annotations

import functools

import numpy as np

from tfstiffness.data.loaded_data import LoadedData

__all__ = ["MNIST1D_SPLITS", "load_mnist1d", "mnist1d_arrays"]

#: Splits of ``"mnist1d"`` and their sizes (the package's standard 80 / 20 split of 5,000).
MNIST1D_SPLITS = {"train": 4000, "test": 1000}


@functools.lru_cache(maxsize=1)
def mnist1d_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The standard MNIST-1D split, generated once per process (a few seconds), offline."""
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError("mnist1d: the package is missing; `pip install mnist1d` (a "
                          "dependency of tfstiffness) generates MNIST-1D offline") from err
    # make_dataset seeds the global numpy and random generators: leave the caller's intact.
    numpy_state, random_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(get_dataset_args())  # Not get_dataset: that downloads.
    finally:
        np.random.set_state(numpy_state)
        random.setstate(random_state)
    arrays = {"train": (generated["x"], generated["y"]),
              "test": (generated["x_test"], generated["y_test"])}
    arrays = {split: (x.astype(np.float32), y.astype(np.int64))
              for split, (x, y) in arrays.items()}
    for split, (x, _) in arrays.items():
        x.setflags(write=False)  # Shared by every call: nobody may change the cache.
        if len(x) != MNIST1D_SPLITS[split]:
            raise RuntimeError(f"mnist1d generated {len(x)} {split} examples, expected "
                               f"{MNIST1D_SPLITS[split]}: an incompatible mnist1d version")
    return arrays


def load_mnist1d(split: str, normalize: bool) -> LoadedData:
    """One split of MNIST-1D (`MNIST1D_SPLITS`), a copy of the process's cached arrays."""
    if split not in MNIST1D_SPLITS:
        raise ValueError(f"split: mnist1d has the standard splits {tuple(MNIST1D_SPLITS)}, "
                         f"got {split!r}")
    if not normalize:
        raise ValueError("normalize: mnist1d is generated standardised (mean 0, std 1); it "
                         "has no unnormalised form, so normalize=False is not available")
    x, y = mnist1d_arrays()[split]
    return LoadedData(x=x.copy(), y=y.copy(), y_coarse=None,
                      class_names=tuple(str(d) for d in range(10)), coarse_names=None,
                      fine_to_coarse=None, num_classes=10, name="mnist1d", split=split)
