"""Data as `fit` takes it: tf.data.Dataset (batched or not), keras.utils.PyDataset and
generators yielding (x,), (x, y) or (x, y, sample_weight), against the brute-force loop on
the same examples as arrays; every refusal names the argument and the accepted forms."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
KERAS_SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
RNG = np.random.default_rng(31)
N = 10
X = RNG.normal(size=(N, 5)).astype("float32")
Y = RNG.integers(0, 3, N)
W = RNG.uniform(0.2, 2.0, N).astype("float32")
FORMS = r"arrays \(one, a list or a dict of them, as model.fit takes\), a tf.data.Dataset"


@pytest.fixture(scope="module")
def model():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(3)])
    for v in model.trainable_variables:  # biases off zero, so a wrong term cannot hide
        v.assign(v + RNG.normal(size=v.shape).astype("float32") * 0.3)
    return model


class _Batches(keras.utils.PyDataset):
    def __init__(self, *arrays, batch=4, endless=False):
        super().__init__()
        self.arrays, self.batch, self.endless = arrays, batch, endless

    @property
    def num_batches(self):
        return None if self.endless else -(-N // self.batch)

    def __getitem__(self, i):
        rows = slice((i % 3) * self.batch, min(N, (i % 3 + 1) * self.batch))
        return tuple(a[rows] for a in self.arrays)


def _generator(*arrays, batch=3, endless=False):
    for start in itertools.count(0, batch) if endless else range(0, N, batch):
        start %= N
        yield tuple(a[start:start + batch] for a in arrays)


def _weighted(yt, p):  # fit's loss on one example with its weight
    return KERAS_SCE(yt[0], p, sample_weight=yt[1])[None]


def test_every_form_equals_the_arrays(model):
    expected, _ = brute_force_gram(model, SCE, X, Y)
    weighted, _ = brute_force_gram(model, _weighted, X, (Y, W))
    forms = {
        "unbatched dataset": (tf.data.Dataset.from_tensor_slices((X, Y)), expected),
        "batched dataset": (tf.data.Dataset.from_tensor_slices((X, Y)).batch(4), expected),
        "weighted dataset": (tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(3), weighted),
        "PyDataset": (_Batches(X, Y), expected),
        "weighted PyDataset": (_Batches(X, Y, W), weighted),
        "generator": (_generator(X, Y), expected),
        "weighted generator": (_generator(X, Y, W), weighted),
    }
    for name, (data, reference) in forms.items():
        gram = tfs.gradient_gram(model, data, loss=SCE, batch_size=4)
        assert relative_error(gram.total, reference) <= 1e-5, name
    # (x,) batches with labels given separately are refused; x alone needs y from somewhere.
    with pytest.raises(ValueError, match=r"y: labels are required with x: pass y=, or x as a "
                       r"dataset or generator yielding \(x, y\)"):
        tfs.gradient_gram(model, tf.data.Dataset.from_tensor_slices((X,)), loss=SCE)


def test_endless_sources_read_num_examples(model):
    expected, _ = brute_force_gram(model, SCE, X[:7], Y[:7])
    for data in (_generator(X, Y, endless=True), _Batches(X, Y, endless=True),
                 tf.data.Dataset.from_tensor_slices((X, Y)).repeat()):
        gram = tfs.gradient_gram(model, data, loss=SCE, num_examples=7)
        assert relative_error(gram.total, expected) <= 1e-5, type(data).__name__
    with pytest.raises(ValueError, match=r"x: the dataset is endless \(repeat\(\)\); pass "
                       r"num_examples="):
        tfs.gradient_gram(model, tf.data.Dataset.from_tensor_slices((X, Y)).repeat(), loss=SCE)
    with pytest.raises(ValueError, match=r"x: the PyDataset is endless \(num_batches is None\); "
                       r"pass num_examples="):
        tfs.gradient_gram(model, _Batches(X, Y, endless=True), loss=SCE)
    with pytest.raises(ValueError, match=r"num_examples: "):
        tfs.gradient_gram(model, _generator(X, Y), loss=SCE, num_examples=0)


def test_dict_inputs_of_different_ranks_unbatched_and_batched():
    image = keras.Input((4, 4, 1), name="image")
    table = keras.Input((3,), name="table")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(image), table])
    model = keras.Model({"image": image, "table": table}, keras.layers.Dense(3)(h))
    x = {"image": RNG.normal(size=(N, 4, 4, 1)).astype("float32"),
         "table": RNG.normal(size=(N, 3)).astype("float32")}
    expected, _ = brute_force_gram(model, SCE, x, Y)
    for data in (tf.data.Dataset.from_tensor_slices((x, Y)),
                 tf.data.Dataset.from_tensor_slices((x, Y)).batch(4)):
        gram = tfs.gradient_gram(model, data, loss=SCE)
        assert relative_error(gram.total, expected) <= 1e-5


def test_stiffness_summary_from_a_dataset(model):
    y = np.arange(N) % 3
    expected, _ = brute_force_gram(model, _weighted, X, (y, W))
    data = tf.data.Dataset.from_tensor_slices((X, y, W)).batch(4)
    summary = tfs.stiffness_summary(model, data, loss=SCE, block_size=3, distance_edges=())
    C = tfs.class_stiffness(tfs.stiffness_matrix(expected, "cosine"), y)
    np.testing.assert_allclose(summary.class_matrix["cosine"], C, atol=1e-5)
    with pytest.raises(ValueError, match=r"y: x is a PyDataset \(_Batches\), which yields its own labels"):
        tfs.stiffness_summary(model, _Batches(X, y), y, loss=SCE)


def test_pipeline_mistakes_name_the_accepted_forms(model):
    with pytest.raises(ValueError, match=r"sample_weight: x is a tf.data.Dataset, which yields its "
                       r"own labels and weights .*pass sample_weight=None"):
        tfs.gradient_gram(model, tf.data.Dataset.from_tensor_slices((X, Y)).batch(2),
                          loss=SCE, sample_weight=W)
    with pytest.raises(TypeError, match=r"x: a batch holds a scalar \(a nested Python list\?\); "
                       r"expected numeric arrays \[batch, ...\]. Pass " + FORMS):
        tfs.gradient_gram(model, iter([([[1.0, 2.0], [1.0]], Y[:2])]), loss=SCE)
    with pytest.raises(TypeError, match=r"x: a batch holds object data of shape \[2\]; "
                       r"expected numeric arrays \[batch, ...\]. Pass " + FORMS):
        tfs.gradient_gram(model, iter([(np.array([X[0], X[1][:2]], dtype=object), Y[:2])]),
                          loss=SCE)
    with pytest.raises(TypeError, match=r"x: expected numbers, got <U1 values; strings need a "
                       r"preprocessor"):
        tfs.gradient_gram(model, iter([(np.array(["a", "b"]), Y[:2])]), loss=SCE)
    with pytest.raises(ValueError, match=r"x: a batch is a tuple of 4; expected x, \(x,\), "
                       r"\(x, y\) or \(x, y, sample_weight\). Pass " + FORMS):
        tfs.gradient_gram(model, iter([(X, Y, W, W)]), loss=SCE)
    with pytest.raises(ValueError, match=r"x: the iterator yielded no examples; pass " + FORMS):
        tfs.gradient_gram(model, iter([]), loss=SCE)
    with pytest.raises(ValueError, match=r"x: the generator yielded no examples; pass " + FORMS):
        tfs.gradient_gram(model, (b for b in []), loss=SCE)
    with pytest.raises(ValueError, match=r"x: some batches carry sample_weight and some do not"):
        tfs.gradient_gram(model, iter([(X[:5], Y[:5], W[:5]), (X[5:], Y[5:])]), loss=SCE)
    with pytest.raises(TypeError, match=r"x: expected a numeric array \[N, ...\], got ragged or "
                       r"mixed data; pass " + FORMS):
        tfs.gradient_gram(model, [[1.0, 2.0], [1.0]], Y[:2], loss=SCE)
