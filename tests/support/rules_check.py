"""Shared check of a model's ghost Gram against the brute-force per-example loop."""

from __future__ import annotations

import os

import keras
import numpy as np

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
TOL = 1e-5


def check_ghost(model, x, y=None, expect_fallback=(), loss=LOSS, rng=None, cross=True,
                batch_size=None):
    """Asserts the ghost Gram (total, by layer, and a cross Gram in blocks of 2) equals the
    brute force within TOL and that exactly `expect_fallback` layers fell back.

    `batch_size=2` makes both Grams use the same traced functions (faster tests).
    Returns (gram, largest relative error seen)."""
    rng = np.random.default_rng(0) if rng is None else rng
    y = rng.integers(0, 3, len(x)) if y is None else y
    ref, ref_layers = brute_force_gram(model, loss, x, y)
    gram = tfs.gradient_gram(model, x, y, loss=loss, method="ghost", by_layer=True,
                             batch_size=batch_size)
    assert gram.method == "ghost"
    assert {key.rsplit("/", 1)[-1] for key in gram.fallback_layers} == set(expect_fallback)
    errors = [relative_error(gram.total, ref)]
    assert errors[-1] <= TOL
    for key, block in ref_layers.items():
        errors.append(relative_error(gram.by_layer[key], block))
        assert errors[-1] <= TOL, key
    if cross:
        x2 = x[::-1][:3].copy()
        y2 = y[::-1][:3].copy()
        result = tfs.gradient_gram(model, x, y, loss=loss, x2=x2, y2=y2, method="ghost",
                                   batch_size=2)
        errors.append(relative_error(result.total,
                                     brute_force_gram(model, loss, x, y, x2, y2)[0]))
        assert errors[-1] <= TOL
    log = os.environ.get("TFS_RULE_ERRORS")  # a file to collect each check's largest error
    if log:
        with open(log, "a") as f:
            f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]} "
                    f"{max(errors):.2e}\n")
    return gram, max(errors)
