"""What "input distance" means for each kind of input, in one place.

`d(x_1, x_2) = 1 - u_1 . u_2` between unit vectors u that represent the inputs:

- one array (images, features, hidden representations): each example flattened, every feature
  standardised with the mean and population std of the set (pooled over both sets when there
  are two; a constant feature is only centred), then scaled to unit length (STIFFNESS.md);
- several inputs (a list or dict) with at least one float input: the same on the concatenation
  of the float inputs; integer inputs (ids, masks) are left out;
- only integer inputs (a tokenised text model such as keras_hub's BERT): token overlap, the
  cosine between the examples' bags of tokens (counts of each id, id 0 = padding left out), of
  the input named ``token_ids`` (else the first input). d is then in [0, 1].

`InputSpace` holds what a set needs (feature statistics or the vocabulary size), so that the
in-memory measures (`input_distances`, the public function, checks its inputs and uses it) and
the streaming summary, which sees one block of rows at a time, compute the same distances.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tfstiffness import checks
from tfstiffness.engine import structure

_STATISTICS_BLOCK = 4096


def _float_leaves(x: Any) -> list[np.ndarray]:
    return [leaf for leaf in structure.leaves(x) if np.asarray(leaf).dtype.kind == "f"]


def _token_leaf(x: Any) -> np.ndarray:
    if isinstance(x, dict) and "token_ids" in x:
        return x["token_ids"]
    return structure.leaves(x)[0]


@dataclasses.dataclass(frozen=True)
class InputSpace:
    """Maps inputs to the unit vectors whose dot products give input distances.

    Attributes:
        kind: "features" (standardised features) or "tokens" (bags of tokens).
        mean, scale: per-feature statistics ("features").
        vocab_size: number of token ids ("tokens").
    """

    kind: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    vocab_size: int = 0

    @classmethod
    def fit(cls, x: Any, x2: Any | None = None) -> InputSpace:
        """The space of one set, or of two sets pooled (swapping them transposes d)."""
        sets = [x] if x2 is None else [x, x2]
        if all(structure.is_nested(s) and not _float_leaves(s) for s in sets):
            top = max(int(np.max(_token_leaf(s), initial=0)) for s in sets)
            return cls("tokens", vocab_size=top + 1)
        pooled = _pooled_features(sets)
        # np.mean and np.std of the pooled features, the std computed in place (the
        # operations np.std performs, in its order, without its second copy of the data).
        mean = pooled.mean(axis=0)
        pooled -= mean
        np.multiply(pooled, pooled, out=pooled)
        std = np.sqrt(pooled.sum(axis=0) / len(pooled))
        return cls("features", mean=mean, scale=np.where(std > 0, std, 1.0))

    def unit(self, x: Any) -> np.ndarray:
        """[n, F] float64 unit rows (a row that is all zero stays zero)."""
        if self.kind == "tokens":
            tokens = np.asarray(_token_leaf(x)).reshape(structure.num_examples(x), -1)
            values = np.zeros((len(tokens), self.vocab_size))
            rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
            np.add.at(values, (rows, tokens.reshape(-1)), 1.0)
            values[:, 0] = 0.0  # padding
        else:
            values = (features(x) - self.mean) / self.scale
        norms = np.linalg.norm(values, axis=1, keepdims=True)
        return values / np.where(norms > 0, norms, 1.0)


def _pooled_features(sets: list[Any]) -> np.ndarray:
    """[N (+ M), F] float64 features of every set, filled block by block (no second copy)."""
    count = sum(structure.num_examples(s) for s in sets)
    pooled, row = None, 0
    for s in sets:
        for start in range(0, structure.num_examples(s), _STATISTICS_BLOCK):
            block = features(structure.take(s, slice(start, start + _STATISTICS_BLOCK)))
            if pooled is None:
                pooled = np.empty((count, block.shape[1]))
            elif block.shape[1] != pooled.shape[1]:
                raise ValueError(f"x2: examples have {block.shape[1]} features but x has "
                                 f"{pooled.shape[1]}.")
            pooled[row:row + len(block)] = block
            row += len(block)
    return np.zeros((0, 0)) if pooled is None else pooled


def features(x: Any) -> np.ndarray:
    """[n, F] float64: the flattened array, or the concatenated float inputs of a structure."""
    if not structure.is_nested(x):
        values = np.asarray(x, dtype=np.float64)
        if values.ndim == 0:
            raise ValueError("x: expected a leading example axis, got a scalar.")
        return values.reshape(len(values), -1)
    leaves = _float_leaves(x)
    n = structure.num_examples(x)
    return np.concatenate([np.asarray(leaf, np.float64).reshape(n, -1) for leaf in leaves], 1)


def input_distances(x: Any, x2: Any | None = None) -> np.ndarray:
    """Distances d = 1 - x_1 . x_2 between standardised, unit-normalised inputs, in [0, 2].

    Each input is flattened; every feature is standardised with the mean and (population)
    std of the set, pooled over both sets when ``x2`` is given so that swapping the sets
    transposes the result; a feature with std 0 is only centred. Each example is then scaled
    to unit L2 norm (an example that is all zero after standardising stays zero, so it is at
    distance 1 from everything, itself included). Works as well on hidden representations.

    Several inputs (a list or dict of arrays, as a multi-input model takes them): the same
    on the concatenation of the float inputs; inputs that are all integer (token ids, masks)
    give token overlap instead, ``1 - cos`` of the examples' bags of tokens (see the module
    docstring). The numbers are those of `InputSpace`, which the streaming summary uses.

    Args:
        x: [N, ...] inputs or representations, or a list / dict of such arrays.
        x2: [M, ...] second set, with the same per-example shape (and structure).

    Returns:
        [N, M] float64 distances (M = N when ``x2`` is None).

    Raises:
        ValueError: a NaN or inf in ``x`` or ``x2`` (the index is (example, flattened
            feature)); ``x2`` has a different per-example size than ``x``.

    Example:
        >>> x = np.array([[0.0, 1.0], [0.0, 2.0], [1.0, 0.0]])
        >>> print(np.round(input_distances(x), 3))
        [[0.    0.5   1.756]
         [0.5   0.    1.945]
         [1.756 1.945 0.   ]]
    """
    _check_inputs(x, x2)
    space = InputSpace.fit(x, x2)
    first = space.unit(x)
    second = first if x2 is None else space.unit(x2)
    return np.clip(1.0 - first @ second.T, 0.0, 2.0)


def _check_inputs(x: Any, x2: Any | None) -> None:
    """Refuses scalars and NaN or inf in any input, and sets of different feature counts."""
    named = structure.named_leaves(x, "x") + (
        [] if x2 is None else structure.named_leaves(x2, "x2"))
    flat = {}
    for name, leaf in named:
        values = np.asarray(leaf, dtype=np.float64)
        if values.ndim == 0:
            raise ValueError(f"{name} must have a leading example axis, got a scalar")
        flat[name] = checks.finite_array(values.reshape(values.shape[0], -1), name)
    plain = x2 is not None and not structure.is_nested(x) and not structure.is_nested(x2)
    if plain and flat["x2"].shape[1] != flat["x"].shape[1]:
        raise ValueError(f"x2 has {flat['x2'].shape[1]} features per example but x has "
                         f"{flat['x'].shape[1]}")
