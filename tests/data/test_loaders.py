"""Data loading under `tfds.testing.mock_data` (no network), the missing-data error, balanced
subsets, the synthetic sets through `load`, and the CIFAR-100 label table."""

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfstiffness import data
from tfstiffness.data import mnist1d_set
from tfstiffness.data.cifar100_labels import (
    COARSE_NAMES,
    FINE_NAMES,
    FINE_TO_COARSE,
    fine_classes_of,
)

IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
                "cifar100": (32, 32, 3)}
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
N = 40


@pytest.fixture
def mock_tfds():
    with tfds.testing.mock_data(num_examples=N):
        yield


# ------------------------------------------------------------------ CIFAR-100 table


def test_cifar100_label_table():
    assert len(FINE_NAMES) == 100 and len(set(FINE_NAMES)) == 100
    assert list(FINE_NAMES) == sorted(FINE_NAMES)  # tfds / keras number them alphabetically.
    assert len(COARSE_NAMES) == 20 and list(COARSE_NAMES) == sorted(COARSE_NAMES)
    assert FINE_TO_COARSE.shape == (100,) and FINE_TO_COARSE.dtype == np.int64
    assert np.bincount(FINE_TO_COARSE).tolist() == [5] * 20
    # The table as commonly published (e.g. with keras' cifar100 "coarse" labels): an
    # independent transcription of the same mapping.
    published = [4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
                 6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
                 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
                 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
                 16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13]
    np.testing.assert_array_equal(FINE_TO_COARSE, published)

    def coarse_of(fine):
        return COARSE_NAMES[FINE_TO_COARSE[FINE_NAMES.index(fine)]]

    assert coarse_of("apple") == "fruit_and_vegetables"
    assert coarse_of("whale") == "aquatic_mammals"
    assert coarse_of("keyboard") == "household_electrical_devices"
    assert coarse_of("tractor") == "vehicles_2"
    assert coarse_of("maple_tree") == "trees"
    assert [FINE_NAMES[i] for i in fine_classes_of(COARSE_NAMES.index("people"))] == [
        "baby", "boy", "girl", "man", "woman"]
    with pytest.raises(ValueError):
        FINE_TO_COARSE[0] = 3  # Read-only: a shared constant.


# ------------------------------------------------------------------ images


@pytest.mark.parametrize("name", sorted(IMAGE_SHAPES))
def test_image_loaders(mock_tfds, tmp_path, name):
    loaded = data.load(name, data_dir=tmp_path)
    assert isinstance(loaded, data.LoadedData)
    assert loaded.x.shape == (N, *IMAGE_SHAPES[name]) and loaded.x.dtype == np.float32
    assert loaded.y.shape == (N,) and loaded.y.dtype == np.int64
    assert loaded.num_classes == NUM_CLASSES[name] == len(loaded.class_names)
    assert 0 <= loaded.y.min() and loaded.y.max() < loaded.num_classes
    # Normalisation: [0, 1] scaling of the raw pixels, then the per-channel constants.
    # (Not batch_size=-1: under mock_data it aborts the process with std::length_error.)
    raw = list(tfds.load(name, split="train", as_supervised=True).as_numpy_iterator())
    raw_x, raw_y = np.stack([r[0] for r in raw]), np.array([r[1] for r in raw])
    np.testing.assert_array_equal(loaded.y, raw_y)
    unit = data.load(name, data_dir=tmp_path, normalize=False).x
    np.testing.assert_allclose(unit, raw_x / 255.0, rtol=1e-6)
    mean, std = (np.array(v, np.float32) for v in data.NORMALIZATION[name])
    np.testing.assert_allclose(loaded.x, (unit - mean) / std, rtol=1e-5, atol=1e-6)
    if name == "cifar100":
        # Coarse labels come from the package's table (mock data's own are random).
        np.testing.assert_array_equal(loaded.y_coarse, FINE_TO_COARSE[loaded.y])
        assert loaded.coarse_names == COARSE_NAMES and loaded.class_names == FINE_NAMES
        np.testing.assert_array_equal(loaded.fine_to_coarse, FINE_TO_COARSE)
    else:
        assert loaded.y_coarse is None and loaded.coarse_names is None
        assert loaded.fine_to_coarse is None


def test_image_options(mock_tfds, tmp_path):
    assert len(data.load("cifar10", "test", data_dir=tmp_path, max_examples=7)) == 7
    assert data.load("mnist", data_dir=tmp_path, max_examples=0).x.shape == (0, 28, 28, 1)
    ds = data.load("cifar100", "test", data_dir=tmp_path, as_numpy=False, batch_size=16)
    assert isinstance(ds, tf.data.Dataset)
    assert ds.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    assert ds.element_spec[0].dtype == tf.float32
    assert [len(b[1]) for b in ds] == [16, 16, N - 32]
    unbatched = data.load("mnist", data_dir=tmp_path, as_numpy=False, max_examples=5)
    assert unbatched.element_spec[0].shape.as_list() == [28, 28, 1]
    assert sum(1 for _ in unbatched) == 5
    # The conversion chunk size does not change the result.
    np.testing.assert_array_equal(data.load("mnist", data_dir=tmp_path, batch_size=3).x,
                                  data.load("mnist", data_dir=tmp_path).x)


def test_balanced_subset_of_loaded_data(mock_tfds, tmp_path):
    with tfds.testing.mock_data(num_examples=300):
        loaded = data.load("cifar10", data_dir=tmp_path)
    idx = data.balanced_subset(loaded.x, loaded.y, per_class=4, seed=1)
    assert np.bincount(loaded.y[idx]).tolist() == [4] * 10
    assert list(loaded.y[idx]) == sorted(loaded.y[idx])  # Grouped by class.
    assert len(set(idx.tolist())) == 40


# ------------------------------------------------------------------ text


@pytest.mark.parametrize("name", ["glue/sst2", "imdb_reviews"])
def test_text_loaders(mock_tfds, tmp_path, name, monkeypatch):
    loaded = data.load(name, data_dir=tmp_path, vocab_size=60, sequence_length=12)
    assert loaded.x.shape == (N, 12) and loaded.x.dtype == np.int32
    assert loaded.y.dtype == np.int64 and set(loaded.y.tolist()) <= {0, 1}
    assert loaded.num_classes == 2 and loaded.y_coarse is None
    assert loaded.vocabulary[:2] == ("", "[UNK]") and len(loaded.vocabulary) <= 60
    assert 0 <= loaded.x.min() and loaded.x.max() < len(loaded.vocabulary)
    lengths = np.sum(loaded.x != 0, axis=1)
    assert lengths.min() >= 1
    assert np.all(loaded.x[np.arange(12)[None, :] >= lengths[:, None]] == 0)  # Padding at end.
    path = data.vocabulary_path(name, 60, tmp_path)
    assert path.parent == tmp_path / "tfstiffness_vocab" and path.exists()
    assert tuple(path.read_text(encoding="utf-8").split("\n")[:-1]) == loaded.vocabulary[2:]

    # Later runs read the saved vocabulary instead of adapting again, and agree.
    def no_adapt(*args, **kwargs):
        raise AssertionError("adapted again although the vocabulary was saved")

    monkeypatch.setattr("keras.layers.TextVectorization.adapt", no_adapt)
    again = data.load(name, data_dir=tmp_path, vocab_size=60, sequence_length=12)
    np.testing.assert_array_equal(again.x, loaded.x)
    assert again.vocabulary == loaded.vocabulary
    ds = data.load(name, data_dir=tmp_path, vocab_size=60, sequence_length=12,
                   as_numpy=False, batch_size=8)
    assert ds.element_spec[0].dtype == tf.int32
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in ds]), loaded.x)


def test_text_vocabulary_is_reloaded_exactly(mock_tfds, tmp_path):
    # A vocabulary placed beforehand is used as is, odd Unicode included (U+2028 is a line
    # break for str.splitlines but not for the file format).
    tokens = ["caf\u00e9", "a\u2028b", "zz"]
    path = data.vocabulary_path("imdb_reviews", 10, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    loaded = data.load("imdb_reviews", "test", data_dir=tmp_path, vocab_size=10,
                       sequence_length=5)
    assert loaded.vocabulary == ("", "[UNK]", *tokens)


def test_unlabelled_text_split_is_refused(mock_tfds, tmp_path):
    with pytest.raises(ValueError, match="no labels"):
        data.load("glue/sst2", "test", data_dir=tmp_path)
    with pytest.raises(ValueError, match="no labels"):
        data.load("imdb_reviews", "unsupervised", data_dir=tmp_path)


# ------------------------------------------------------------------ missing data


@pytest.fixture
def no_network(monkeypatch):
    # Without network tfds retries downloads for minutes: fail every download at once.
    def refuse(*args, **kwargs):
        raise ConnectionError("network disabled in tests")

    for method in ("download", "download_and_extract"):
        monkeypatch.setattr(tfds.download.DownloadManager, method, refuse)


@pytest.mark.parametrize("download", [True, False])
def test_missing_dataset_gives_one_clear_error(tmp_path, no_network, download):
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("mnist", data_dir=tmp_path / "empty", download=download)
    assert time.monotonic() - start < 60  # Not 3.5 minutes of download retries.
    message = str(info.value)
    assert "'mnist'" in message and str(tmp_path / "empty") in message
    assert "tfds build mnist" in message and "copy" in message
    assert info.value.__cause__ is not None  # Raised from the tfds error.
    assert isinstance(info.value, RuntimeError)


# ------------------------------------------------------------------ argument checks


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("cifar1000")
    with pytest.raises(ValueError, match="vocab_size"):
        data.load("mnist", data_dir=tmp_path, vocab_size=100)
    with pytest.raises(ValueError, match="unexpected arguments"):
        data.load("mnist", data_dir=tmp_path, num_per_class=3)
    with pytest.raises(ValueError, match="split"):
        data.load("gaussian_blobs", "holdout")


# ------------------------------------------------------------------ balanced subsets


def test_balanced_subset():
    y = np.repeat(np.arange(4), [5, 7, 6, 9])
    np.random.default_rng(0).shuffle(y)
    idx = data.balanced_subset(None, y, per_class=5, seed=3)
    assert idx.dtype == np.int64 and len(idx) == 20 and len(set(idx.tolist())) == 20
    assert y[idx].tolist() == sorted(y[idx].tolist()) == np.repeat(np.arange(4), 5).tolist()
    for c in range(4):
        assert np.all(np.diff(idx[y[idx] == c]) > 0)
    np.testing.assert_array_equal(idx, data.balanced_subset(None, y, per_class=5, seed=3))
    others = [data.balanced_subset(None, y, per_class=5, seed=s) for s in range(4, 8)]
    assert any(not np.array_equal(idx, o) for o in others)
    with pytest.raises(ValueError, match=r"per_class=6 .* class 0 has only 5"):
        data.balanced_subset(None, y, per_class=6, seed=0)
    with pytest.raises(ValueError, match="lengths"):
        data.balanced_subset(np.zeros(3), y, per_class=1)


# ------------------------------------------------------------------ synthetic sets


def test_synthetic_hierarchical_images_through_load():
    kwargs = {"num_per_class": 4, "num_superclasses": 3, "classes_per_superclass": 2,
              "image_shape": (8, 8, 1)}
    splits = {s: data.load("hierarchical_images", s, seed=2, **kwargs)
              for s in ("train", "validation", "test")}
    for loaded in splits.values():
        assert loaded.x.shape == (24, 8, 8, 1) and np.bincount(loaded.y).tolist() == [4] * 6
        np.testing.assert_array_equal(loaded.y_coarse, loaded.fine_to_coarse[loaded.y])
        assert len(loaded.coarse_names) == 3 and loaded.num_classes == 6
    # Disjoint examples, shared structure (clean class means agree across splits).
    flat = {s: loaded.x.reshape(24, -1) for s, loaded in splits.items()}
    assert not np.any(np.all(flat["train"][:, None] == flat["test"][None], axis=-1))
    clean = [data.load("hierarchical_images", s, seed=2, noise=0.0, **kwargs)
             for s in ("train", "test")]
    for c in range(6):
        np.testing.assert_array_equal(clean[0].x[clean[0].y == c][0],
                                      clean[1].x[clean[1].y == c][0])
    again = data.load("hierarchical_images", "train", seed=2, **kwargs)
    np.testing.assert_array_equal(again.x, splits["train"].x)
    cifar_like = data.load("hierarchical_images", num_per_class=1, image_shape=(8, 8, 3))
    np.testing.assert_array_equal(cifar_like.fine_to_coarse, FINE_TO_COARSE)
    assert len(data.load("hierarchical_images", num_per_class=1, image_shape=(8, 8, 3),
                         max_examples=10)) == 10


def test_other_synthetic_sets_through_load():
    arcs = data.load("two_arcs", n=10)
    assert arcs.x.shape == (100, 2) and arcs.num_classes == 2
    np.testing.assert_array_equal(data.load("two_arcs", "test", n=10).x, arcs.x)
    blobs = data.load("gaussian_blobs", "validation", num_classes=4, num_per_class=6, dim=3)
    assert blobs.x.shape == (24, 3) and np.bincount(blobs.y).tolist() == [6] * 4
    text = data.load("synthetic_text", num_examples=30, vocab_size=25, sequence_length=9)
    assert text.x.shape == (30, 9) and text.x.dtype == np.int32 and text.x.max() < 25
    test = data.load("synthetic_text", "test", num_examples=30, vocab_size=25, sequence_length=9)
    assert not np.array_equal(test.x, text.x)
    ds = data.load("gaussian_blobs", as_numpy=False, batch_size=10, num_per_class=5)
    assert [len(b[1]) for b in ds] == [10, 5]


# ------------------------------------------------------------------ standardised synthetic sets


@pytest.mark.parametrize("name, kwargs", [
    ("hierarchical_images", {"num_per_class": 6, "num_superclasses": 3,
                             "classes_per_superclass": 2, "image_shape": (8, 8, 3),
                             "noise": 16.0}),
    ("gaussian_blobs", {"num_classes": 4, "num_per_class": 30, "dim": 5, "spread": 3.0}),
])
def test_synthetic_sets_are_standardised_with_their_training_split(name, kwargs):
    train = data.load(name, "train", seed=3, **kwargs)
    axes = tuple(range(train.x.ndim - 1))
    np.testing.assert_allclose(train.x.mean(axis=axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.x.std(axis=axes), 1.0, rtol=1e-5)
    # Every split shares the transform: the raw values map by one affine map per channel.
    raw = {s: data.load(name, s, seed=3, normalize=False, **kwargs).x
           for s in ("train", "test")}
    mean = raw["train"].mean(axis=axes, dtype=np.float64)
    std = raw["train"].std(axis=axes, dtype=np.float64)
    test = data.load(name, "test", seed=3, **kwargs)
    np.testing.assert_allclose(test.x, (raw["test"] - mean) / std, rtol=1e-5, atol=1e-5)
    assert raw["train"].std() > 2.5  # the generator's own scale, kept with normalize=False


def test_raw_synthetic_values_are_the_generators():
    from tfstiffness.data import synthetic

    x, y = synthetic.gaussian_blobs(num_classes=2, num_per_class=9, dim=3, seed=1)
    raw = data.load("gaussian_blobs", num_classes=2, num_per_class=3, dim=3, seed=1,
                    normalize=False)
    keep = np.concatenate([np.flatnonzero(y == c)[0::3] for c in range(2)])
    np.testing.assert_array_equal(np.sort(raw.x, axis=0), np.sort(x[np.sort(keep)], axis=0))
    arcs = data.load("two_arcs", n=6)  # Walker's grid keeps its coordinates
    np.testing.assert_array_equal(arcs.x, synthetic.two_arcs_grid(6)[0])


def test_untrained_paper_models_start_near_a_uniform_guess_on_the_cifar100_stand_in():
    # The super-class study's data (noise 16): before standardising, the untrained networks
    # started at loss 25 (fully connected) and 25 (CNN) against ln 100 = 4.6.
    import keras

    from tfstiffness import models

    loaded = data.load("hierarchical_images", num_per_class=5, noise=16.0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for build in (models.fully_connected, models.paper_cnn):
        keras.utils.set_random_seed(0)
        model = build(loaded.x.shape[1:], loaded.num_classes)
        initial = float(loss(loaded.y, model(loaded.x, training=False)))
        assert abs(initial - np.log(100)) < 1.0, (build.__name__, initial)


# ------------------------------------------------------------------ MNIST-1D


def test_mnist1d_standard_split_shapes_and_labels():
    assert "mnist1d" in data.DATASETS
    train, test = data.load("mnist1d", "train"), data.load("mnist1d", "test")
    assert train.x.shape == (4000, 40) and test.x.shape == (1000, 40)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.num_classes == 10 and train.class_names == tuple("0123456789")
    assert set(train.y.tolist()) == set(range(10)) and set(test.y.tolist()) == set(range(10))
    assert np.bincount(train.y).min() > 350 and np.bincount(test.y).min() > 80
    assert abs(train.x.mean()) < 0.01 and abs(train.x.std() - 1) < 0.01  # standardised
    assert not np.any(np.all(test.x[:50, None] == train.x[None], axis=-1))  # disjoint
    assert train.y_coarse is None and train.split == "train" and train.name == "mnist1d"
    assert len(data.load("mnist1d", "test", max_examples=7)) == 7
    batches = list(data.load("mnist1d", "test", as_numpy=False, batch_size=400))
    assert [len(b[1]) for b in batches] == [400, 400, 200]


def test_mnist1d_is_deterministic_offline_and_leaves_global_seeds_alone(monkeypatch):
    import random
    import socket

    first = data.load("mnist1d", "train")
    first.x[0, 0] = 123.0  # A caller's change must not reach the cache.

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    mnist1d_set.mnist1d_arrays.cache_clear()  # Generate again, offline.
    np.random.seed(7)
    random.seed(7)
    numpy_state, random_state = np.random.get_state(), random.getstate()
    started = time.perf_counter()
    again = data.load("mnist1d", "train")
    seconds = time.perf_counter() - started
    assert again.x[0, 0] != 123.0
    first.x[0, 0] = again.x[0, 0]
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.y, again.y)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    assert random.getstate() == random_state
    assert seconds < 60, seconds  # a few seconds on 2 cores
    started = time.perf_counter()
    data.load("mnist1d", "test")
    assert time.perf_counter() - started < 1.0  # cached in-process


def test_mnist1d_refuses_what_it_does_not_have():
    with pytest.raises(ValueError, match=r"split: mnist1d has the standard splits \('train', "
                                         r"'test'\), got 'validation'"):
        data.load("mnist1d", "validation")
    with pytest.raises(ValueError, match="normalize: mnist1d is generated standardised"):
        data.load("mnist1d", normalize=False)
    with pytest.raises(ValueError, match="unexpected arguments for 'mnist1d'"):
        data.load("mnist1d", noise=1.0)
