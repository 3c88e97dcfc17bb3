"""gradient_gram against the brute-force per-example loop, for every method and model."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support import REPO_ROOT
from tests.support.bruteforce import brute_force_gram, relative_error
from tests.support.models_zoo import ZOO, data_for
from tfstiffness.engine import _generic
from tfstiffness.engine.gram import METHODS

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
TOL = 1e-5


def _methods(name):
    # vmap through attention aborts the process under oneDNN; it is tested in a subprocess.
    return ("ghost", "jacobian", "auto") if name == "text_net" else METHODS


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_method_matches_brute_force(name):
    model = ZOO[name]()
    x, y = data_for(name, 7)
    x2, y2 = data_for(name, 4, seed=1)
    model(x[:1])
    ref, ref_layers = brute_force_gram(model, LOSS, x, y)
    ref_cross, _ = brute_force_gram(model, LOSS, x, y, x2, y2)
    for method in _methods(name):
        gram = tfs.gradient_gram(model, x, y, loss=LOSS, method=method, by_layer=True)
        assert relative_error(gram.total, ref) <= TOL, method
        assert set(gram.by_layer) == set(ref_layers), method
        for key, block in ref_layers.items():
            assert relative_error(gram.by_layer[key], block) <= TOL, (method, key)
        np.testing.assert_allclose(sum(gram.by_layer.values()), gram.total, rtol=1e-5,
                                   atol=1e-6 * np.abs(ref).max())
        assert relative_error(gram.sq_norms, np.diag(ref)) <= TOL
        # Cross-set, tiled into blocks smaller than either set.
        cross = tfs.gradient_gram(model, x, y, loss=LOSS, x2=x2, y2=y2, method=method,
                                  batch_size=3)
        assert cross.total.shape == (7, 4) and cross.cross
        assert relative_error(cross.total, ref_cross) <= TOL, method
        ref_sq2 = brute_force_gram(model, LOSS, x2, y2)[0].diagonal()
        assert relative_error(cross.sq_norms2, ref_sq2) <= TOL


def test_tiling_gives_the_same_gram_for_every_block_size():
    model = ZOO["conv_net"]()
    x, y = data_for("conv_net", 9)
    full = tfs.gradient_gram(model, x, y, loss=LOSS, method="ghost").total
    for block in (1, 2, 4, 9):
        tiled = tfs.gradient_gram(model, x, y, loss=LOSS, method="ghost", batch_size=block)
        assert relative_error(tiled.total, full) <= TOL, block
        np.testing.assert_allclose(tiled.total, tiled.total.T, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", [
    "compiled", "name", "object", "callable",
])
def test_loss_forms_and_one_hot_labels(loss):
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 6)
    model(x[:1])
    ref, _ = brute_force_gram(model, LOSS, x, y)
    if loss == "compiled":
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        arg = None
    elif loss == "name":  # a name gives a loss on probabilities: compare with its own reference
        arg = "sparse_categorical_crossentropy"
        ref, _ = brute_force_gram(model, keras.losses.get(arg), x, y)
    elif loss == "object":
        arg = keras.losses.CategoricalCrossentropy(from_logits=True)
    else:
        def arg(y_true, y_pred):
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    labels = np.eye(3)[y] if loss == "object" else y  # one-hot for the categorical loss
    assert relative_error(tfs.gradient_gram(model, x, labels, loss=arg).total, ref) <= TOL
    # Integer labels are turned into what a categorical loss expects, and vice versa.
    if loss == "object":
        assert relative_error(tfs.gradient_gram(model, x, y, loss=arg).total, ref) <= TOL
    if loss == "compiled":
        assert relative_error(tfs.gradient_gram(model, x, np.eye(3)[y]).total, ref) <= TOL


def test_vmap_on_attention_is_refused_in_process_with_onednn():
    model = ZOO["text_net"]()
    x, y = data_for("text_net", 4)
    if _generic._ONEDNN_ON:
        with pytest.raises(ValueError, match="method: 'vmap' would crash"):
            tfs.gradient_gram(model, x, y, loss=LOSS, method="vmap")
    # auto never takes the crashing path
    assert tfs.gradient_gram(model, x, y, loss=LOSS, method="auto").method == "ghost"


@pytest.mark.slow
def test_vmap_on_attention_matches_with_onednn_off():
    script = textwrap.dedent("""
        import keras, numpy as np, tfstiffness as tfs
        from tests.support.bruteforce import brute_force_gram, relative_error
        from tests.support.models_zoo import text_net, data_for
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        model = text_net(); x, y = data_for("text_net", 5)
        ref, _ = brute_force_gram(model, loss, x, y)
        gram = tfs.gradient_gram(model, x, y, loss=loss, method="vmap")
        print("ERR", relative_error(gram.total, ref))
    """)
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,  # noqa: PLW1510
                         cwd=str(REPO_ROOT), timeout=300)
    line = [s for s in out.stdout.splitlines() if s.startswith("ERR")]
    assert line, out.stderr[-2000:]
    assert float(line[0].split()[1]) <= TOL


def test_zero_gradient_examples_are_counted():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="relu")])
    model.layers[0].kernel.assign([[1.0], [0.0]])
    model.layers[0].bias.assign([0.0])
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0]], np.float32)  # x[1] is in the dead zone
    gram = tfs.gradient_gram(model, x, np.zeros(3), loss="mse")
    assert gram.num_zero_gradient == 1 and gram.sq_norms[1] == 0
