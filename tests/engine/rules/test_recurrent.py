"""Recurrent layers' rule (unrolled per-example VJP) against brute force."""

import keras
import numpy as np
import pytest

from tests.support.rules_check import check_ghost

L = keras.layers
RNG = np.random.default_rng(5)


def test_bidirectional_lstm_with_mask():
    tokens = keras.Input((4,), dtype="int32")
    h = L.Embedding(20, 3, mask_zero=True)(tokens)
    h = L.Bidirectional(L.LSTM(3, return_sequences=True))(h)
    model = keras.Model(tokens, L.Dense(3)(L.GlobalAveragePooling1D()(h)))
    x = RNG.integers(1, 20, size=(5, 4)).astype("int32")
    x[1:, 3:] = 0
    check_ghost(model, x, rng=RNG, batch_size=2)


@pytest.mark.slow  # about 30 s each: tracing four unrolled, vectorised recurrences
@pytest.mark.parametrize("cell", [L.SimpleRNN, L.GRU, L.LSTM])
def test_recurrent_layers_with_masks_both_directions(cell):
    tokens = keras.Input((6,), dtype="int32")
    h = L.Embedding(20, 3, mask_zero=True)(tokens)
    h = L.Bidirectional(cell(4, return_sequences=True))(h)
    h = cell(3, go_backwards=True, return_sequences=True)(h)
    h = cell(4)(L.GlobalAveragePooling1D()(h)[:, None, :] + h)  # unmasked from here
    model = keras.Model(tokens, L.Dense(3)(h))
    x = RNG.integers(1, 20, size=(5, 6)).astype("int32")
    x[1:, 4:] = 0  # padding: masked steps in every layer but the last
    x[2, 1] = 0  # a hole inside a sequence
    check_ghost(model, x, rng=RNG, batch_size=2)


def test_recurrent_layer_with_initial_state_and_returned_state():
    sequence = keras.Input((5, 3))
    start = keras.Input((4,))
    both = keras.Input((5 * 3 + 4,))
    out, h, c = L.LSTM(4, return_state=True, return_sequences=True)(
        sequence, initial_state=[start, start])
    inner = keras.Model([sequence, start], L.Concatenate()([L.Flatten()(out), h, c]))
    outputs = inner([L.Reshape((5, 3))(both[:, :15]), both[:, 15:]])
    model = keras.Model(both, L.Dense(3)(outputs))
    check_ghost(model, RNG.normal(size=(5, 19)).astype("float32"), rng=RNG, batch_size=2)
