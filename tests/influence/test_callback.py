"""TracInCallback: the same numbers as tfs.tracin over checkpoints saved by hand (and as a
brute-force sum of per-example gradients), the learning rate of each epoch, and training left
exactly as it is without the callback."""

import math

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import per_example_gradients, relative_error
from tfstiffness.influence.callback import TracInCallback

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
N, M, BATCH, EPOCHS = 30, 6, 8, 3
STEPS = math.ceil(N / BATCH)


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 5)).astype("float32")
    xt = rng.normal(size=(M, 5)).astype("float32")
    return x, rng.integers(0, 3, N), xt, rng.integers(0, 3, M)


def _model(dropout: bool = False) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = [keras.Input((5,)), keras.layers.Dense(8, activation="tanh")]
    if dropout:
        layers.append(keras.layers.Dropout(0.3))
    return keras.Sequential(layers + [keras.layers.Dense(3)])


def _schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=2, decay_rate=0.7)


class _SaveByHand(keras.callbacks.Callback):
    """A copy of the model after each epoch: the checkpoints a user would save."""

    def __init__(self):
        super().__init__()
        self.checkpoints = []

    def on_epoch_end(self, epoch, logs=None):
        copy = keras.models.clone_model(self.model)
        copy.set_weights(self.model.get_weights())
        self.checkpoints.append(copy)


def _fit_with(callbacks, epochs=EPOCHS, optimizer=None):
    x, y, _, _ = _data()
    model = _model()
    model.compile(optimizer=optimizer or keras.optimizers.SGD(_schedule()), loss=LOSS)
    model.fit(x, y, epochs=epochs, batch_size=BATCH, shuffle=True, verbose=0,
              callbacks=callbacks)
    return model


def _epoch_rates():
    """eta of each epoch, independently: the schedule's mean over the epoch's steps."""
    schedule = _schedule()
    return [float(np.mean([float(schedule(e * STEPS + i)) for i in range(STEPS)]))
            for e in range(EPOCHS)]


@pytest.mark.parametrize("kind", ["dot", "cosine"])
def test_running_sum_equals_tracin_over_checkpoints_saved_by_hand(kind):
    x, y, xt, yt = _data()
    callback, by_hand = TracInCallback(x, y, xt, yt, kind=kind), _SaveByHand()
    _fit_with([callback, by_hand])
    etas = _epoch_rates()
    assert relative_error(np.array(callback.learning_rates), np.array(etas)) <= 1e-6
    assert len(set(etas)) == EPOCHS  # The schedule really changes eta from epoch to epoch.
    got = callback.result()
    want = tfs.tracin(by_hand.checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=etas,
                      kind=kind)
    assert relative_error(got.scores, want.scores) <= 1e-5
    assert relative_error(got.self_influence, want.self_influence) <= 1e-5
    assert relative_error(got.test_self_influence, want.test_self_influence) <= 1e-5
    if kind == "dot":  # And against per-example tape.gradient, summed over the checkpoints.
        reference = 0.0
        for model, eta in zip(by_hand.checkpoints, etas):
            g = np.concatenate(list(per_example_gradients(model, LOSS, x, y).values()), 1)
            h = np.concatenate(list(per_example_gradients(model, LOSS, xt, yt).values()), 1)
            reference = reference + eta * g @ h.T
        assert relative_error(got.scores, reference) <= 1e-5


def test_kept_checkpoints_stream_the_top_k_of_the_full_matrix():
    x, y, xt, yt = _data()
    callback, by_hand = TracInCallback(x, y, xt, yt, top_k=4), _SaveByHand()
    model = _fit_with([callback, by_hand])
    weights = model.get_weights()
    got = callback.result()
    for a, b in zip(model.get_weights(), weights):  # result() restored the model.
        np.testing.assert_array_equal(a, b)
    full = tfs.tracin(by_hand.checkpoints, x, y, xt, yt, loss=LOSS,
                      learning_rates=callback.learning_rates)
    proponents, proponent_scores, opponents, opponent_scores = full.top(4)
    assert got.scores is None
    np.testing.assert_array_equal(got.proponents, proponents)
    np.testing.assert_array_equal(got.opponents, opponents)
    assert relative_error(got.proponent_scores, proponent_scores) <= 1e-5
    assert relative_error(got.opponent_scores, opponent_scores) <= 1e-5
    assert relative_error(got.self_influence, full.self_influence) <= 1e-5


def test_fit_with_the_callback_gives_the_same_weights_as_without():
    x, y, xt, yt = _data()

    def train(callbacks):
        model = _model(dropout=True)  # Dropout draws random numbers: a shifted state shows.
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=LOSS)
        history = model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0,
                            callbacks=callbacks)
        return model.get_weights(), history.history["loss"], np.random.rand()

    without = train([])
    with_callback = train([TracInCallback(x, y, xt, yt),
                           TracInCallback(x, y, xt, yt, top_k=2, kind="cosine")])
    for a, b in zip(with_callback[0], without[0]):
        np.testing.assert_array_equal(a, b)
    assert with_callback[1] == without[1]
    assert with_callback[2] == without[2]  # NumPy's global state too.


def test_rates_set_per_epoch_are_read_whatever_the_callback_order():
    x, y, _, _ = _data()
    rates = [0.05, 0.02, 0.01]
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: rates[epoch])
    callback = TracInCallback(x, y)  # Self-influence only; listed before the scheduler.
    _fit_with([callback, scheduler], optimizer=keras.optimizers.Adam(0.5))
    assert callback.learning_rates == pytest.approx(rates, rel=1e-6)
    assert callback.result().scores is None and callback.result().self_influence.shape == (N,)


def test_fixed_learning_rate_and_several_fit_calls_accumulate():
    x, y, xt, yt = _data()
    callback = TracInCallback(x, y, xt, yt, learning_rate=1.0)
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=LOSS)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.learning_rates == [1.0, 1.0, 1.0]
    assert callback.result().num_checkpoints == 3


def test_refusals_name_the_argument():
    x, y, xt, yt = _data()
    with pytest.raises(ValueError, match=r"learning_rate: expected a finite number >= 0"):
        TracInCallback(x, y, learning_rate=-1.0)
    with pytest.raises(ValueError, match="top_k: proponents and opponents need a test set"):
        TracInCallback(x, y, top_k=3)
    with pytest.raises(ValueError, match="kind: expected one of"):
        TracInCallback(x, y, xt, yt, kind="sign")
    with pytest.raises(ValueError, match="checkpoints: none added yet"):
        TracInCallback(x, y, xt, yt).result()
