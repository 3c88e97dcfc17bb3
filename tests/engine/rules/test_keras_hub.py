"""keras_hub layers' rules against brute force (keras_hub is a test dependency only)."""

import inspect

import keras
import numpy as np
import pytest

from tests.engine.rules.test_embedding import tied_classifier
from tests.support.rules_check import check_ghost
from tfstiffness.engine.rules import rule_for

keras_hub = pytest.importorskip("keras_hub")
L = keras.layers
RNG = np.random.default_rng(3)


class TwoPositionCalls(L.Layer):
    """One PositionEmbedding called with a static start and with dynamic `positions`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.position = keras_hub.layers.PositionEmbedding(sequence_length=9, name="position")

    def call(self, h):
        reversed_positions = keras.ops.flip(keras.ops.arange(keras.ops.shape(h)[1]), 0)
        return h + self.position(h, start_index=2) + self.position(
            h, positions=keras.ops.expand_dims(reversed_positions, 0))


def test_position_embeddings():
    tokens = keras.Input((6,), dtype="int32")
    h = keras_hub.layers.TokenAndPositionEmbedding(20, 8, 4, name="token_and_position")(tokens)
    h = keras_hub.layers.PositionEmbedding(sequence_length=6, name="static")(h) + h
    h = TwoPositionCalls()(h)
    model = keras.Model(tokens, L.Dense(3)(L.Flatten()(h)))
    for v in model.trainable_variables:  # away from the tiny default initialisation
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    check_ghost(model, RNG.integers(0, 20, size=(5, 6)).astype("int32"), rng=RNG, batch_size=2)


def _norm_classes():
    from tfstiffness.engine.rules._keras_hub import registered_normalizations

    return registered_normalizations()


@pytest.mark.parametrize("norm_class", _norm_classes(), ids=lambda c: c.__module__)
def test_rms_style_normalizations(norm_class):
    needs_dim = "input_dim" in inspect.signature(norm_class.__init__).parameters
    norm = norm_class(input_dim=6) if needs_dim else norm_class()
    model = keras.Sequential([keras.Input((3, 6)), L.Dense(6), norm, L.Flatten(), L.Dense(3)])
    assert rule_for(norm) is not None
    for v in model.trainable_variables:
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    check_ghost(model, RNG.normal(size=(5, 3, 6)).astype("float32"), rng=RNG, batch_size=2)


@pytest.mark.parametrize("kwargs", [{}, {"logit_soft_cap": 0.5}])
def test_keras_hub_reversible_embedding_tied(kwargs):
    model = tied_classifier(6, 4, 5, table_class=keras_hub.layers.ReversibleEmbedding, **kwargs)
    x = RNG.integers(0, 6, size=(5, 5)).astype("int32")
    check_ghost(model, x, RNG.integers(0, 6, 5), rng=RNG, batch_size=2)
