"""Models as users bring them: several inputs (list or dict), several outputs with their own
losses and weights, per-token sequence losses, recurrent layers, keras_hub transformers,
keras.applications and mixed precision. Each against the brute-force loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def sce(y, p):
    return keras.losses.sparse_categorical_crossentropy(y, p, from_logits=True)


def _two_inputs(as_dict: bool):
    image = keras.Input((6, 6, 1), name="image")
    table = keras.Input((3,), name="table")
    h = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, activation="relu")(image))
    h = keras.layers.Concatenate()([h, keras.layers.Dense(4, activation="tanh")(table)])
    out = keras.layers.Dense(3)(h)
    return keras.Model({"image": image, "table": table} if as_dict else [image, table], out)


def _two_input_data(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return ({"image": rng.normal(size=(n, 6, 6, 1)).astype("float32"),
             "table": rng.normal(size=(n, 3)).astype("float32")}, rng.integers(0, 3, n))


@pytest.mark.parametrize("method", ["auto", "vmap", "jacobian"])
def test_two_input_model_given_as_dict_and_as_list(method):
    x, y = _two_input_data()
    dict_model = _two_inputs(as_dict=True)
    expected, _ = brute_force_gram(dict_model, sce, x, y)
    gram = tfs.gradient_gram(dict_model, x, y, loss=SCE, method=method, batch_size=4)
    assert relative_error(gram.total, expected) <= 1e-5

    list_model = _two_inputs(as_dict=False)
    as_list = [x["image"], x["table"]]
    expected, _ = brute_force_gram(list_model, sce, as_list, y)
    for given in (as_list, tuple(as_list), x):  # a dict keyed by the input names works too
        gram = tfs.gradient_gram(list_model, given, y, loss=SCE, method=method)
        assert relative_error(gram.total, expected) <= 1e-5
    cross = tfs.gradient_gram(list_model, as_list, y, loss=SCE, x2=x, y2=y, method=method)
    assert relative_error(cross.total, expected) <= 1e-5


def test_structure_mistakes_are_named():
    x, y = _two_input_data()
    model = _two_inputs(as_dict=True)
    with pytest.raises(ValueError, match=r"x: missing key\(s\) \['table'\] and unexpected "
                                         r"key\(s\) \['tabel'\]; the model's inputs are "
                                         r"\['image', 'table'\]"):
        tfs.gradient_gram(model, {"image": x["image"], "tabel": x["table"]}, y, loss=SCE)
    with pytest.raises(ValueError, match=r"x: the model takes a dict of inputs with keys "
                                         r"\['image', 'table'\]; got a list of 2"):
        tfs.gradient_gram(model, [x["image"], x["table"]], y, loss=SCE)
    with pytest.raises(ValueError, match=r"x\['table'\]: contains NaN or inf in 1 example"):
        bad = dict(x, table=x["table"].copy())
        bad["table"][2, 0] = np.nan
        tfs.gradient_gram(model, bad, y, loss=SCE)
    with pytest.raises(ValueError, match=r"x\['table'\]: each example has shape \(4,\), but "
                                         r"the model expects \(3,\)"):
        tfs.gradient_gram(model, dict(x, table=np.zeros((7, 4), "float32")), y, loss=SCE)
    with pytest.raises(ValueError, match=r"x: every input needs the same number of examples; "
                                         r"got x\['image'\]: 7, x\['table'\]: 5"):
        tfs.gradient_gram(model, dict(x, table=x["table"][:5]), y, loss=SCE)
    list_model = _two_inputs(as_dict=False)
    with pytest.raises(ValueError, match=r"x: the model takes 2 inputs \['image', 'table'\]; "
                                         r"got one array"):
        tfs.gradient_gram(list_model, x["table"], y, loss=SCE)


def _two_outputs(as_dict: bool):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6, activation="tanh")(inputs)
    cls = keras.layers.Dense(3, name="cls")(h)
    reg = keras.layers.Dense(2, name="reg")(h)
    return keras.Model(inputs, {"cls": cls, "reg": reg} if as_dict else [cls, reg])


def test_dict_outputs_with_compiled_losses_and_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 4)).astype("float32")
    y = {"cls": rng.integers(0, 3, 9), "reg": rng.normal(size=(9, 2)).astype("float32")}
    model = _two_outputs(as_dict=True)
    model.compile("adam", loss={"cls": SCE, "reg": "mse"}, loss_weights={"cls": 1.0, "reg": 0.5})

    def reference(yt, p):  # written out: shares nothing with the package
        mse = tf.reduce_mean(tf.square(tf.cast(yt["reg"], tf.float32) - p["reg"]), -1)
        return sce(yt["cls"], p["cls"]) + 0.5 * mse

    expected, _ = brute_force_gram(model, reference, x, y)
    for method in ("auto", "vmap"):
        gram = tfs.gradient_gram(model, x, y, method=method)
        assert relative_error(gram.total, expected) <= 1e-5

    listed = _two_outputs(as_dict=False)
    listed.set_weights(model.get_weights())
    gram = tfs.gradient_gram(listed, x, [y["cls"], y["reg"]], loss=[SCE, "mse"],
                             loss_weights=[1.0, 0.5])
    assert relative_error(gram.total, expected) <= 1e-5
    gram = tfs.gradient_gram(listed, x, {"cls": y["cls"], "reg": y["reg"]},
                             loss={"cls": SCE, "reg": "mse"}, loss_weights={"reg": 0.5})
    assert relative_error(gram.total, expected) <= 1e-5
    with pytest.raises(ValueError, match=r"loss: no model output named \['head'\]; the "
                                         r"model's outputs are \['cls', 'reg'\]"):
        tfs.gradient_gram(model, x, y, loss={"head": SCE})
    with pytest.raises(ValueError, match=r"y: missing labels for output\(s\) \['reg'\]"):
        tfs.gradient_gram(model, x, {"cls": y["cls"]})


def _sequence_model(vocab=11, length=6):
    tokens = keras.Input((length,), dtype="int32")
    h = keras.layers.Embedding(vocab, 5, mask_zero=True)(tokens)
    h = keras.layers.Dense(7, activation="tanh")(h)
    return keras.Model(tokens, keras.layers.Dense(vocab)(h))


def test_per_token_loss_is_the_mean_over_unmasked_tokens():
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, 11, (8, 6)).astype("int32")
    lengths = np.array([6, 5, 3, 1, 4, 6, 2, 3])
    tokens[np.arange(6)[None, :] >= lengths[:, None]] = 0  # padding
    labels = rng.integers(0, 11, (8, 6))
    model = _sequence_model()

    def reference(yt, p):  # mean over the example's real tokens
        real = tf.cast(tf.not_equal(tokens_of(yt), 0), tf.float32)
        return tf.reduce_sum(sce(yt[..., 0], p) * real, 1) / tf.reduce_sum(real, 1)

    # The reference needs each example's tokens: carry them beside the labels.
    def tokens_of(yt):
        return yt[..., 1]

    both = np.stack([labels, tokens], -1)
    expected, _ = brute_force_gram(model, reference, tokens, both)
    gram = tfs.gradient_gram(model, tokens, labels, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5

    # Labels can mask too: ignore_class marks tokens the loss leaves out.
    ignored = np.where(tokens == 0, -1, labels)
    plain = keras.Sequential([keras.Input((6,), dtype="int32"),
                              keras.layers.Embedding(11, 5), keras.layers.Dense(7, "tanh"),
                              keras.layers.Dense(11)])
    plain.set_weights(model.get_weights())
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    gram = tfs.gradient_gram(plain, tokens, ignored, loss=loss)
    expected, _ = brute_force_gram(plain, reference, tokens, both)
    assert relative_error(gram.total, expected) <= 1e-5


def _recurrent(kind: str):
    tokens = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(9, 4, mask_zero=kind.endswith("masked"))(tokens)
    if kind.startswith("lstm"):
        h = keras.layers.LSTM(3)(h)
    elif kind.startswith("gru"):
        h = keras.layers.GRU(3)(h)
    elif kind.startswith("simple"):
        h = keras.layers.SimpleRNN(3)(h)
    else:
        h = keras.layers.Bidirectional(keras.layers.LSTM(3))(h)
    return keras.Model(tokens, keras.layers.Dense(2)(h))


@pytest.mark.parametrize("kind", ["lstm", "gru_masked", "bidirectional_masked", "simple_rnn"])
def test_recurrent_models_under_auto(kind):
    rng = np.random.default_rng(3)
    tokens = rng.integers(1, 9, (6, 5)).astype("int32")
    tokens[:3, 3:] = 0
    y = rng.integers(0, 2, 6)
    model = _recurrent(kind)
    expected, _ = brute_force_gram(model, sce, tokens, y)
    gram = tfs.gradient_gram(model, tokens, y, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5
    with pytest.raises(ValueError, match=r"method: 'vmap' cannot give per-example gradients "
                                         r"through the recurrent layer\(s\)"):
        tfs.gradient_gram(model, tokens, y, loss=SCE, method="vmap")


def test_binary_crossentropy_by_name_with_integer_labels():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 3)).astype("float32")
    y = rng.integers(0, 2, 7)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])

    def reference(yt, p):
        return keras.losses.binary_crossentropy(tf.cast(yt[:, None], tf.float32), p)

    expected, _ = brute_force_gram(model, reference, x, y)
    gram = tfs.gradient_gram(model, x, y, loss="binary_crossentropy")
    assert relative_error(gram.total, expected) <= 1e-5
    model.compile("sgd", "binary_crossentropy")
    assert relative_error(tfs.gradient_gram(model, x, y).total, expected) <= 1e-5


def test_string_and_out_of_range_labels_are_named():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.zeros((4, 3), "float32")
    with pytest.raises(TypeError, match="y: expected numeric labels, got <U3 values; map class "
                                        "names to integer ids first"):
        tfs.gradient_gram(model, x, np.array(["cat", "dog", "cat", "dog"]), loss=SCE)
    with pytest.raises(ValueError, match=r"y: labels must lie in \[0, 2\)"):
        tfs.gradient_gram(model, x, np.array([0, 1, 5, 0]), loss=sce)  # a plain callable


def test_cache_follows_label_rank_input_structure_and_loss():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 4)).astype("float32"), rng.integers(0, 3, 6)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    expected, _ = brute_force_gram(model, sce, x, y)
    cce = keras.losses.CategoricalCrossentropy(from_logits=True)
    first = tfs.gradient_gram(model, x, y, loss=SCE, method="vmap")
    one_hot = tfs.gradient_gram(model, x, np.eye(3)[y], loss=cce, method="vmap")
    again = tfs.gradient_gram(model, x, y, loss=SCE, method="vmap")
    for gram in (first, one_hot, again):
        assert relative_error(gram.total, expected) <= 1e-5
    # A fresh loss object with the same configuration reuses the traces; another does not.
    cache = model.__dict__["_tfstiffness_prepared"]
    size = len(cache)
    tfs.gradient_gram(model, x, y, loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None), method="vmap")
    assert len(cache) == size
    probabilities = tfs.gradient_gram(
        model, x, y, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
        method="vmap")
    assert len(cache) == size + 1
    assert relative_error(probabilities.total, expected) > 1e-3


def test_mixed_precision_is_computed_in_float32():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.integers(0, 3, 8)

    def build():
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(16, activation="tanh"),
                                 keras.layers.Dense(3)])

    reference = build()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(reference.get_weights())
    expected, _ = brute_force_gram(reference, sce, x, y)
    for method in ("auto", "vmap", "jacobian"):
        gram = tfs.gradient_gram(mixed, x, y, loss=SCE, method=method)
        assert relative_error(gram.total, expected) <= 1e-5, method
    assert mixed.layers[0].compute_dtype == "float16"  # the user's model is left as it was


def test_dict_inputs_downstream():
    x, y = _two_input_data(n=12, seed=7)
    model = _two_inputs(as_dict=True)
    gram = tfs.gradient_gram(model, x, y, loss=SCE)
    S = tfs.stiffness_matrix(gram)
    summary = tfs.stiffness_summary(model, x, y, loss=SCE, block_size=5, radius=9.0)
    np.testing.assert_allclose(summary.class_matrix["cosine"], tfs.class_stiffness(S, y),
                               atol=1e-6)
    features = np.concatenate([x["image"].reshape(12, -1), x["table"]], 1)
    curve = tfs.stiffness_vs_distance(S, features, labels=y, bins=np.linspace(0, 2, 21))
    np.testing.assert_allclose(summary.distance_curve["cosine"].means, curve.means, atol=1e-6)
    near = tfs.neighbourhood_stiffness(S, features, radius=9.0)
    np.testing.assert_allclose(summary.neighbourhood["cosine"], near.values, atol=1e-6)
    layers = tfs.layerwise_stiffness(tfs.gradient_gram(model, x, y, loss=SCE, by_layer=True), y)
    assert len(layers) == 3


def test_token_overlap_distance_for_integer_inputs():
    from tfstiffness.measures.input_space import input_distances

    tokens = np.array([[1, 2, 0], [1, 2, 0], [3, 4, 0], [1, 3, 0]])
    d = input_distances({"token_ids": tokens, "padding_mask": (tokens > 0).astype("int32")})
    np.testing.assert_allclose(d[0], [0.0, 0.0, 1.0, 0.5], atol=1e-12)


def _bert():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=8)
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=2,
                                               preprocessor=None)


def _gpt2():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=8)
    pooled = keras.layers.GlobalAveragePooling1D()(backbone.output)
    return keras.Model(backbone.input, keras.layers.Dense(2)(pooled))


def _token_dict(n, with_segments, seed=8):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 40, (n, 8)).astype("int32")
    mask = np.ones((n, 8), "int32")
    mask[: n // 2, 6:] = 0
    tokens[mask == 0] = 0
    x = {"token_ids": tokens, "padding_mask": mask}
    if with_segments:
        x["segment_ids"] = np.zeros((n, 8), "int32")
    return x, rng.integers(0, 2, n)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_keras_hub_models_with_dict_inputs(name):
    model = _bert() if name == "bert" else _gpt2()
    x, y = _token_dict(5, with_segments=name == "bert")
    expected, _ = brute_force_gram(model, sce, x, y)
    gram = tfs.gradient_gram(model, x, y, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "EfficientNetB0"])
def test_keras_applications_at_32x32(name):
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10,
                                              classifier_activation=None)
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(3, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 3)
    expected, _ = brute_force_gram(model, sce, x, y)
    gram = tfs.gradient_gram(model, x, y, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5
