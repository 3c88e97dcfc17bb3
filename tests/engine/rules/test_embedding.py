"""Embedding rules (lookups, tied output projections, subclasses) against brute force."""

import warnings

import keras
import numpy as np
import pytest

from tests.support.rules_check import check_ghost
from tfstiffness.engine.rules import rule_for

L = keras.layers
RNG = np.random.default_rng(2)
UNIT = keras.initializers.RandomNormal(stddev=1.0)


def tied_classifier(vocab, dim, length, table_class=L.ReversibleEmbedding, **kwargs):
    """Tokens -> table lookup -> pooled -> Dense -> logits from the same table (reverse)."""
    tokens = keras.Input((length,), dtype="int32")
    # Unit-scale rows: with Keras' default (+-0.05) logits are so small that a soft cap is
    # nearly the identity, and a rule that ignored it would pass.
    table = table_class(vocab, dim, name="table", embeddings_initializer=UNIT, **kwargs)
    h = L.Dense(dim, activation="tanh")(L.GlobalAveragePooling1D()(table(tokens)))
    return keras.Model(tokens, table(h, reverse=True))


@pytest.mark.parametrize("vocab, dim, length, kwargs", [
    (5, 4, 6, {}),  # many positions: the table's gradient is materialised
    (50, 8, 1, {}),  # few positions, large table: one pairwise factor, lookups and logits
    (5, 4, 6, {"logit_soft_cap": 0.5}),  # the rule watches the logits before the cap
    (5, 4, 6, {"tie_weights": False}),  # a separate output kernel
])
def test_reversible_embedding_used_both_ways_is_exact(vocab, dim, length, kwargs):
    model = tied_classifier(vocab, dim, length, **kwargs)
    x = RNG.integers(0, vocab, size=(6, length)).astype("int32")
    x[0] = 1  # a token repeated throughout an example
    y = RNG.integers(0, vocab, len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no self-check failure, no fallback
        check_ghost(model, x, y, rng=RNG, batch_size=2)


def test_reversible_embedding_projection_only():
    # The table only used as the output projection (its lookups never reach the loss).
    tokens = keras.Input((3,), dtype="float32")
    table = L.ReversibleEmbedding(7, 3, name="table")
    model = keras.Model(tokens, table(L.Dense(3)(tokens), reverse=True))
    check_ghost(model, RNG.normal(size=(5, 3)).astype("float32"), RNG.integers(0, 7, 5),
                rng=RNG, batch_size=2)


class PlainSubclass(L.Embedding):
    """Inherits `call`: the Embedding rule holds."""


class OverridingSubclass(L.Embedding):
    """Overrides `call` (doubles the output): no rule, generic path."""

    def call(self, inputs):
        return 2.0 * super().call(inputs)


def test_subclasses_match_rules_by_inherited_call():
    tokens = keras.Input((4,), dtype="int32")
    plain = PlainSubclass(6, 3, name="plain")
    overriding = OverridingSubclass(6, 3, name="overriding")
    h = L.Concatenate()([plain(tokens), overriding(tokens)])
    model = keras.Model(tokens, L.Dense(3)(L.Flatten()(h)))
    assert rule_for(plain) is rule_for(L.Embedding(2, 2))
    assert rule_for(overriding) is None
    x = RNG.integers(0, 6, size=(5, 4)).astype("int32")
    check_ghost(model, x, rng=RNG, expect_fallback=("overriding",), batch_size=2)
