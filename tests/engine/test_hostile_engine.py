"""Hostile inputs to the engine (gradient_gram, stiffness_summary): never a silent wrong number,
never a stale resume, never an opaque crash. Each case asserts the message or the result."""

import zipfile

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tfstiffness.engine.gram import NonFiniteGradientError

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
METHODS = ("auto", "vmap", "jacobian")


def _model(batch_norm=False):
    layers = [keras.Input((4,)), keras.layers.Dense(6, activation="relu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    return keras.Sequential(layers + [keras.layers.Dense(3)])


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), np.arange(n) % 3


# ------------------------------------------------------------------------ non-finite numbers


@pytest.mark.parametrize("method", METHODS)
def test_nan_weights_are_refused_by_every_method(method):
    model = _model()
    kernel = model.layers[0].kernel
    kernel.assign(np.where(np.eye(4, 6, dtype=bool), np.nan, kernel.numpy()))
    x, y = _data()
    with pytest.raises(ValueError, match=r"model: variable '.*kernel' holds 4 NaN or inf "
                                         r"value\(s\), so the loss and its gradients are "
                                         "undefined"):
        tfs.gradient_gram(model, x, y, loss=LOSS, method=method)


@pytest.mark.parametrize("method", METHODS)
def test_overflowing_examples_are_named_by_every_method(method):
    x, y = _data()
    x[[3, 7]] *= 1e30
    with pytest.raises(NonFiniteGradientError, match=r"the loss gradients of 2 example\(s\) of "
                                                     r"x \(first at index 3\) are NaN or inf"):
        tfs.gradient_gram(_model(), x, y, loss=LOSS, method=method)
    with pytest.raises(NonFiniteGradientError, match=r"2 example\(s\) of x2 \(first at index 3"):
        tfs.gradient_gram(_model(), x[:3], y[:3], loss=LOSS, x2=x, y2=y, method=method)
    with pytest.raises(NonFiniteGradientError, match="are NaN or inf"):
        tfs.stiffness_summary(_model(), x, y, loss=LOSS, block_size=4, method=method)


# ------------------------------------------------------------------------------------ memory


def test_batch_size_is_capped_at_the_number_of_examples():
    x, y = _data()
    model = _model()
    gram = tfs.gradient_gram(model, x, y, loss=LOSS, batch_size=10**9)
    np.testing.assert_allclose(gram.total, tfs.gradient_gram(model, x, y, loss=LOSS).total,
                               rtol=1e-6, atol=1e-7)
    from tfstiffness.engine.run import prepare_run

    run = prepare_run(model, x, y, LOSS, None, None, "auto", 10**9, None)
    assert run.block == 12


def test_a_result_that_cannot_fit_is_refused_up_front(monkeypatch):
    from tfstiffness.engine import memory

    x = np.zeros((300_000, 4), "float32")
    y = np.arange(300_000) % 3
    needed = 4 * 300_000**2 / 2**30
    available = needed / 0.9  # more than needed, but the 80 % a result may take is less
    monkeypatch.setattr(memory, "host_available_bytes", lambda: int(available * 2**30))
    with pytest.raises(MemoryError, match=(
            rf"the result \(1 x \[300000, 300000\] float32\) needs {needed:.1f} GiB, more than "
            rf"the {0.8 * available:.1f} GiB it may take \(80% of the {available:.1f} GiB of "
            r"memory available\). Use tfs.stiffness_summary")):
        tfs.gradient_gram(_model(), x, y, loss=LOSS)


# ------------------------------------------------------------------------- stale checkpoints


def test_resume_with_another_loss_is_refused(tmp_path):
    x, y = _data()
    model = _model()
    path = tmp_path / "state.npz"
    tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)
    other = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    with pytest.raises(ValueError, match=r"checkpoint: .*state.npz was written for a different "
                                         r"run: loss differ"):
        tfs.stiffness_summary(model, x, y, loss="sparse_categorical_crossentropy",
                              block_size=4, checkpoint=path)
    with pytest.raises(ValueError, match="loss differ"):
        tfs.stiffness_summary(model, x, y, loss=other, block_size=4, checkpoint=path)


def test_resume_with_other_moving_statistics_is_refused(tmp_path):
    x, y = _data()
    model = _model(batch_norm=True)
    path = tmp_path / "state.npz"
    first = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)
    again = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)
    assert again.blocks_resumed == again.blocks_total
    np.testing.assert_array_equal(first.class_matrix["sign"], again.class_matrix["sign"])
    bn = model.layers[1]
    bn.moving_mean.assign(bn.moving_mean.numpy() + 1.0)
    with pytest.raises(ValueError, match=r"non-trainable variables \(e.g. BatchNorm moving "
                                         r"statistics\) differ"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)


@pytest.mark.parametrize("corruption", ["truncated", "garbage", "foreign_npz", "pickled"])
def test_a_corrupt_checkpoint_is_refused_naming_the_file(tmp_path, corruption):
    x, y = _data()
    model = _model()
    path = tmp_path / "state.npz"
    tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)
    if corruption == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif corruption == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif corruption == "foreign_npz":
        np.savez(path, something=np.arange(3))
    else:
        np.save(path.with_suffix(".npy"), np.array([{"a": 1}], dtype=object))
        with zipfile.ZipFile(path, "w") as z:
            z.write(path.with_suffix(".npy"), "fingerprint.npy")
    with pytest.raises(ValueError, match=r"checkpoint: .*state.npz is not a readable "
                                         r"stiffness_summary checkpoint \(.*\); it may be "
                                         "truncated or another file. Delete it"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)


# -------------------------------------------------------------------------- argument errors


def test_summary_arguments_are_named():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="block_size: expected a positive integer or None, "
                                         "got 0"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=0)
    with pytest.raises(ValueError, match=r"num_classes: 2 is too small for labels up to 2; "
                                         r"pass num_classes >= 3"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, num_classes=2)
    with pytest.raises(TypeError, match="y: expected integer class labels, got <U1 values"):
        tfs.stiffness_summary(model, x, np.array(list("abcabcabcabc")), loss=LOSS)


def test_callable_loss_with_out_of_range_labels_gets_one_line():
    x, y = _data()

    def my_loss(yt, yp):
        return keras.losses.sparse_categorical_crossentropy(yt, yp, from_logits=True)

    with pytest.raises(ValueError, match=r"^y: labels must lie in \[0, 3\) for a model with 3 "
                                         r"outputs; got values in \[0, 7\].$"):
        tfs.gradient_gram(_model(), x, np.where(y == 2, 7, y), loss=my_loss)


def _dead_layer_behind_huge_activations():
    """Hidden activations ~1e21 (finite) feed a ReLU layer that is dead on every example: its
    kernel's per-example gradients are exactly zero, every other gradient finite."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6),
                              keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    model.layers[0].kernel.assign(np.full((4, 6), 1e21, "float32"))
    model.layers[0].bias.assign(np.full(6, 1e21, "float32"))
    model.layers[1].kernel.assign(np.full((6, 5), -1.0, "float32"))  # all inputs < 0: dead
    x = np.random.default_rng(0).uniform(0.5, 1.0, (9, 4)).astype("float32")
    return model, x, np.arange(9) % 3


@pytest.mark.parametrize("method", ["auto", "ghost"])
def test_huge_activations_into_a_dead_layer_give_the_exact_finite_gram(method):
    from tests.support.bruteforce import brute_force_gram, per_example_gradients, relative_error

    model, x, y = _dead_layer_behind_huge_activations()
    grads = per_example_gradients(model, LOSS, x, y)
    assert all(np.isfinite(g).all() for g in grads.values())
    dead = [g for key, g in grads.items() if g.shape[1] == 30]  # the 6 x 5 kernel
    assert dead and not dead[0].any()
    gram = tfs.gradient_gram(model, x, y, loss=LOSS, method=method)
    expected, _ = brute_force_gram(model, LOSS, x, y)
    assert np.isfinite(gram.total).all()
    assert relative_error(gram.total, expected) <= 1e-5
