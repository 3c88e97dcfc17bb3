"""Data: the loaders, the package's synthetic sets (`synthetic`) and the CIFAR-100 label tables
(`cifar100_labels`).

`load` (in `loaders`) is the one entry point; the sources it reads each have a module:
`image_sets` and `text_sets` (TensorFlow Datasets, through `tfds_access`), `synthetic_sets`
and `mnist1d_set`; `loaded_data` holds what they return (`LoadedData`) and `balanced_subset`.

The loaders' names are reachable here (`tfstiffness.data.load`) and load on first use:
tensorflow-datasets takes seconds to import, and `synthetic` needs only numpy.
"""

import importlib

# Public name -> the module of this package that defines it.
_LOADER_NAMES = {
    "DATASETS": "loaders",
    "DatasetUnavailableError": "tfds_access",
    "LoadedData": "loaded_data",
    "MNIST1D_SPLITS": "mnist1d_set",
    "NORMALIZATION": "image_sets",
    "REACH_TIMEOUT": "tfds_access",
    "balanced_subset": "loaded_data",
    "load": "loaders",
    "unreachable_hosts": "tfds_access",
    "vocabulary_path": "text_sets",
}


def __getattr__(name: str):
    if name in _LOADER_NAMES:
        return getattr(importlib.import_module(f"tfstiffness.data.{_LOADER_NAMES[name]}"), name)
    raise AttributeError(f"module 'tfstiffness.data' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LOADER_NAMES))


__all__ = list(_LOADER_NAMES)
