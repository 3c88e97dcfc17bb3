"""The names under which results are reported per layer (the keys of `GradientGram.by_layer`).

Pure Python: a variable's key is its layer's path, so the engine, its factor sources and the
probes that label per-layer measures all name a layer the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def layer_key(variable: Any) -> str:
    """The name under which a variable's Gram block is reported: its layer's path.

    Example:
        >>> class Variable:
        ...     path = "sequential/dense_1/kernel"
        >>> layer_key(Variable())
        'sequential/dense_1'
    """
    return variable.path.rsplit("/", 1)[0]


def group_by_layer(variables: Sequence) -> dict[str, list[int]]:
    """Layer key -> indices into `variables`, in the model's variable order."""
    groups: dict[str, list[int]] = {}
    for index, v in enumerate(variables):
        groups.setdefault(layer_key(v), []).append(index)
    return groups
