"""The callback never aborts a fit: undefined stiffness is recorded as NaN, with a warning."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), np.arange(n) % 2


def test_a_diverging_fit_is_recorded_not_aborted():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)])
    # A learning rate that overflows the weights within a few steps.
    model.compile(keras.optimizers.SGD(1e18), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    callback = tfs.StiffnessCallback(x[:8], y[:8], kinds=("cosine",), images=False)
    with pytest.warns(UserWarning, match=r"stiffness is undefined at this measurement .*; "
                                         r"recorded as NaN \(1 undefined measurement"):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0,
                  callbacks=[keras.callbacks.TerminateOnNaN(), callback])
    assert callback.history[0]["undefined"] == 0  # before training: defined
    assert callback.history[-1]["undefined"] == 1
    assert np.isnan(callback.history[-1]["train_train/cosine/within"])
    assert callback.probes.undefined_count >= 1
    arrays = callback.history_arrays()
    assert arrays["train_train/cosine/class_matrix"].shape[1:] == (2, 2)


def test_dict_probes_in_the_callback():
    rng = np.random.default_rng(1)
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Concatenate()([a, b])
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(2)(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = {"a": rng.normal(size=(24, 3)).astype("float32"),
         "b": rng.normal(size=(24, 2)).astype("float32")}
    y = np.arange(24) % 2
    probe = {k: v[:8] for k, v in x.items()}
    val = {k: v[8:16] for k, v in x.items()}
    callback = tfs.StiffnessCallback(probe, y[:8], val_x=val, val_y=y[8:16], images=False)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[callback])
    gram = tfs.gradient_gram(model, probe, y[:8])
    S = tfs.stiffness_matrix(gram)
    C = tfs.class_stiffness(S, y[:8])
    np.testing.assert_allclose(callback.history[-1]["train_train/cosine/class_matrix"], C,
                               atol=1e-6)
    with pytest.raises(ValueError, match="val_x: examples of another structure"):
        tfs.StiffnessCallback(probe, y[:8], val_x={"a": val["a"]}, val_y=y[8:16])
