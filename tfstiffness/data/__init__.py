"""Data: the loaders (`loaders`), the package's synthetic sets (`synthetic`) and the CIFAR-100
label tables (`cifar100_labels`).

The loaders' names are reachable here (`tfstiffness.data.load`) and load on first use:
tensorflow-datasets takes seconds to import, and `synthetic` needs only numpy.
"""

import importlib

_LOADER_NAMES = ("DatasetUnavailableError", "LoadedData", "REACH_TIMEOUT", "balanced_subset",
                 "load", "unreachable_hosts", "vocabulary_path")


def __getattr__(name: str):
    if name in _LOADER_NAMES:
        return getattr(importlib.import_module("tfstiffness.data.loaders"), name)
    raise AttributeError(f"module 'tfstiffness.data' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LOADER_NAMES))


__all__ = list(_LOADER_NAMES)  # noqa: PLE0604
