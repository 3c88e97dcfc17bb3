"""One entry point for the data sets of the stiffness experiments: `load`.

Real data sets come from TensorFlow Datasets (tfds): ``"mnist"``, ``"fashion_mnist"``,
``"cifar10"``, ``"cifar100"``, ``"glue/sst2"``, ``"imdb_reviews"``. The synthetic ones of
`tfstiffness.data.synthetic` load through the same function: ``"hierarchical_images"``,
``"two_arcs"``, ``"gaussian_blobs"``, ``"synthetic_text"``. ``"mnist1d"`` is MNIST-1D
(Greydanus 2020), a real published benchmark generated offline from its templates by the
``mnist1d`` package: the standard 4,000 / 1,000 train / test split (`MNIST1D_SPLITS`).

Images are float32, scaled to [0, 1], then (``normalize=True``, the default) standardised per
channel with the published training-set statistics in `NORMALIZATION`:

============= ========================== ==========================
data set      mean                       std
============= ========================== ==========================
mnist         0.1307                     0.3081
fashion_mnist 0.2860                     0.3530
cifar10       (0.4914, 0.4822, 0.4465)   (0.2470, 0.2435, 0.2616)
cifar100      (0.5071, 0.4865, 0.4409)   (0.2673, 0.2564, 0.2762)
============= ========================== ==========================

The synthetic images (``hierarchical_images``) and points (``gaussian_blobs``) are standardised
the same way (``normalize=True``): per channel (per feature) with the mean and std of their
training split, so that every split shares one transform and an untrained network starts near
the loss of a uniform guess, ln(num_classes). ``two_arcs`` keeps its coordinates on [-1, 1]^2
(Walker's neighbourhood radii are in those units) and ``synthetic_text`` its token ids.
MNIST-1D comes standardised by its generator (mean 0, std 1 over all 5,000 signals: the form
its published accuracies were measured on) and is returned as it is: float32 [N, 40].

Texts are lower-cased, stripped of HTML line breaks and punctuation, split on whitespace and
mapped to int32 ids by a `keras.layers.TextVectorization` adapted on the TRAINING split (also
when another split is loaded). Id 0 is padding, id 1 out-of-vocabulary; every sequence is
padded or truncated to ``sequence_length``. The vocabulary is saved to
``<data_dir>/tfstiffness_vocab/<name>_<vocab_size>.txt`` (``/`` in the name becomes ``_``) and
read back on later runs, so repeated runs map texts to the same ids.

Without network access tfds cannot download: place prepared data in ``data_dir`` beforehand
(see `DatasetUnavailableError`).

Example:
    >>> from tfstiffness import data
    >>> blobs = data.load("gaussian_blobs", num_classes=3, num_per_class=20, dim=2)
    >>> blobs.x.shape, blobs.num_classes, blobs.y_coarse is None
    ((60, 2), 3, True)
    >>> idx = data.balanced_subset(blobs.x, blobs.y, per_class=5, seed=0)
    >>> np.bincount(blobs.y[idx]).tolist()
    [5, 5, 5]
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfstiffness.data import synthetic
from tfstiffness.outputs.atomic import atomic_write
from tfstiffness.data.cifar100_labels import COARSE_NAMES, FINE_NAMES, FINE_TO_COARSE
from tfstiffness.errors import DatasetUnavailableError  # noqa: F401 (re-exported)

__all__ = [
    "DATASETS",
    "MNIST1D_SPLITS",
    "NORMALIZATION",
    "DatasetUnavailableError",
    "LoadedData",
    "balanced_subset",
    "load",
    "vocabulary_path",
]

#: Per-channel (mean, std) of the training images scaled to [0, 1] (the usual published
#: values, e.g. those of the torchvision examples and of the CIFAR papers' code).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

_IMAGE_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
    "cifar100": FINE_NAMES,
}


@dataclass(frozen=True)
class _TextSpec:
    feature: str  # Name of the text feature in the tfds examples.
    unlabelled_splits: tuple[str, ...]  # Splits whose labels are -1.


_TEXT: dict[str, _TextSpec] = {
    "glue/sst2": _TextSpec("sentence", ("test",)),
    "imdb_reviews": _TextSpec("text", ("unsupervised",)),
}
_TEXT_DEFAULTS = {"vocab_size": 20000, "sequence_length": 128}

_SYNTHETIC = ("hierarchical_images", "two_arcs", "gaussian_blobs", "synthetic_text")
_SYNTHETIC_SPLITS = ("train", "validation", "test")
#: Splits of ``"mnist1d"`` and their sizes (the package's standard 80 / 20 split of 5,000).
MNIST1D_SPLITS = {"train": 4000, "test": 1000}

#: Every name `load` accepts.
DATASETS: tuple[str, ...] = (*NORMALIZATION, "mnist1d", *_TEXT, *_SYNTHETIC)


@dataclass
class LoadedData:
    """A data set split in memory.

    Attributes:
        x: Inputs: float32 images [N, H, W, C], int32 token ids [N, sequence_length], or
            float32 features [N, D].
        y: int64 labels [N] (the fine labels for CIFAR-100).
        y_coarse: int64 super-class labels [N] for CIFAR-100 and ``hierarchical_images``
            (computed as ``fine_to_coarse[y]``), else None.
        class_names: Name of each label.
        coarse_names: Name of each super-class, or None.
        fine_to_coarse: int64 [num_classes] super-class of each label, or None.
        num_classes: Number of labels.
        name: The data set's name as given to `load`.
        split: The split loaded.
        vocabulary: For text, the token of each id (``vocabulary[0] == ""`` is padding,
            ``vocabulary[1] == "[UNK]"``); else None.
    """

    x: np.ndarray
    y: np.ndarray
    y_coarse: np.ndarray | None
    class_names: tuple[str, ...]
    coarse_names: tuple[str, ...] | None
    fine_to_coarse: np.ndarray | None
    num_classes: int
    name: str = ""
    split: str = ""
    vocabulary: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.y)


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    as_numpy: bool = True,
    batch_size: int | None = None,
    max_examples: int | None = None,
    normalize: bool = True,
    download: bool = True,
    vocab_size: int | None = None,
    sequence_length: int | None = None,
    seed: int = 0,
    **generator_kwargs: Any,
) -> LoadedData | tf.data.Dataset:
    """Loads one split of a data set, preprocessed for the stiffness experiments.

    Args:
        name: One of `DATASETS`.
        split: A tfds split (``"train"``, ``"test"``, ``"validation"`` for glue/sst2, also
            slices like ``"train[:10%]"``). Synthetic sets have three disjoint splits
            ``"train"``, ``"validation"``, ``"test"`` drawn from one structure (same class
            prototypes); ``"two_arcs"`` returns its full grid for every split.
            ``"mnist1d"`` has ``"train"`` (4,000) and ``"test"`` (1,000).
        data_dir: tfds data directory (default: ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``); text vocabularies are stored under it too.
        as_numpy: Return a `LoadedData` of numpy arrays; otherwise a `tf.data.Dataset` of
            ``(x, y)`` pairs, preprocessed, in stored order (shuffle it yourself).
        batch_size: With ``as_numpy=False``, batch the dataset; with ``as_numpy=True``, the
            number of examples converted at a time (default 1024); it does not change the
            result.
        max_examples: Keep only the first ``max_examples`` examples of the split.
        normalize: Images: standardise with `NORMALIZATION` (True) or keep [0, 1] (False);
            synthetic images and points: standardise with their training split's statistics
            (True) or keep the generator's values (False). ``"mnist1d"`` exists only
            standardised: False is refused.
        download: Let tfds download and prepare a missing data set. False fails at once
            when the data is not in ``data_dir``.
        vocab_size: Text: vocabulary size, padding and out-of-vocabulary ids included
            (default 20000; ``synthetic_text``: 100).
        sequence_length: Text: padded length (default 128; ``synthetic_text``: 32).
        seed: Seed of the synthetic generators (ignored for tfds data sets and for
            ``"mnist1d"``, whose standard split has its own fixed seed).
        **generator_kwargs: Further arguments of the synthetic generator, e.g.
            ``num_per_class``, ``image_shape``, ``noise`` (hierarchical_images),
            ``num_classes``, ``num_per_class``, ``dim``, ``spread`` (gaussian_blobs),
            ``n`` (two_arcs), ``num_examples``, ``num_classes`` (synthetic_text). Sizes are
            per split.

    Returns:
        A `LoadedData`, or a `tf.data.Dataset` when ``as_numpy=False``.

    Raises:
        DatasetUnavailableError: A tfds data set is not in ``data_dir`` and could not be
            downloaded.
        ValueError: Unknown name, an unlabelled split (glue/sst2 ``test``, imdb
            ``unsupervised``), or arguments that do not apply to the data set.

    Example:
        >>> arcs = load("two_arcs", n=10)
        >>> arcs.x.shape, arcs.class_names
        ((100, 2), ('arc_0', 'arc_1'))
    """
    if name not in DATASETS:
        raise ValueError(f"name: unknown data set {name!r}; expected one of {DATASETS}")
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be non-negative, got {max_examples}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    text = name in _TEXT or name == "synthetic_text"
    if not text and (vocab_size is not None or sequence_length is not None):
        raise ValueError(f"vocab_size and sequence_length apply to text data sets, not {name!r}")
    if generator_kwargs and name not in _SYNTHETIC:
        raise ValueError(f"unexpected arguments for {name!r}: {sorted(generator_kwargs)}")

    if name in (*_SYNTHETIC, "mnist1d"):
        if name == "mnist1d":
            loaded = _load_mnist1d(split, normalize)
        else:
            loaded = _load_synthetic(name, split, seed, vocab_size, sequence_length,
                                     generator_kwargs, normalize)
        if max_examples is not None:
            loaded = _take(loaded, max_examples)
        if as_numpy:
            return loaded
        ds = tf.data.Dataset.from_tensor_slices((loaded.x, loaded.y))
        return ds.batch(batch_size) if batch_size else ds

    if name in _TEXT:
        vocab_size = vocab_size or _TEXT_DEFAULTS["vocab_size"]
        sequence_length = sequence_length or _TEXT_DEFAULTS["sequence_length"]
        ds, vocabulary, class_names = _text_dataset(
            name, split, data_dir, download, vocab_size, sequence_length)
    else:
        ds, class_names = _image_dataset(name, split, data_dir, download, normalize)
        vocabulary = None
    if max_examples is not None:
        ds = ds.take(max_examples)
    if not as_numpy:
        return ds.batch(batch_size) if batch_size else ds

    x, y = _to_numpy(ds, batch_size or 1024)
    hierarchical = name == "cifar100"
    return LoadedData(
        x=x,
        y=y,
        # From the package's table, not the data: see `cifar100_labels`.
        y_coarse=FINE_TO_COARSE[y] if hierarchical else None,
        class_names=class_names,
        coarse_names=COARSE_NAMES if hierarchical else None,
        fine_to_coarse=FINE_TO_COARSE.copy() if hierarchical else None,
        num_classes=len(class_names),
        name=name,
        split=split,
        vocabulary=vocabulary,
    )


def balanced_subset(x: Any, y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of exactly ``per_class`` examples of every class, chosen by ``seed``.

    Classes are ``0 .. max(y)``; every one must have at least ``per_class`` examples. The
    same ``(y, per_class, seed)`` always gives the same indices. Returning indices (rather
    than arrays) lets one call select ``x``, ``y``, ``y_coarse`` or any parallel array.

    Args:
        x: The inputs, only checked to have as many examples as ``y`` (None skips the check).
        y: int labels [N].
        per_class: Examples to pick from each class.
        seed: Seed of the choice.

    Returns:
        int64 indices [num_classes * per_class], grouped by class (class 0 first), ascending
        within each class.

    Raises:
        ValueError: A class has fewer than ``per_class`` examples (message names it).

    Example:
        >>> balanced_subset(None, np.array([0, 1, 0, 1, 1, 0]), per_class=2, seed=0).shape
        (4,)
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected a 1-D integer label array, got {y.dtype} {y.shape}")
    if x is not None and len(x) != len(y):
        raise ValueError(f"x and y have different lengths: {len(x)} and {len(y)}")
    if per_class < 1:
        raise ValueError(f"per_class must be positive, got {per_class}")
    if len(y) == 0:
        raise ValueError("y is empty")
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(int(y.max()) + 1):
        members = np.flatnonzero(y == c)
        if len(members) < per_class:
            raise ValueError(
                f"per_class={per_class} but class {c} has only {len(members)} examples")
        picked.append(np.sort(rng.choice(members, size=per_class, replace=False)))
    return np.concatenate(picked).astype(np.int64)


def vocabulary_path(
    name: str, vocab_size: int, data_dir: str | os.PathLike | None = None
) -> Path:
    """Where the text vocabulary of ``name`` with ``vocab_size`` ids is kept.

    Example:
        >>> vocabulary_path("glue/sst2", 20000, "/data").as_posix()
        '/data/tfstiffness_vocab/glue_sst2_20000.txt'
    """
    root = Path(data_dir) if data_dir else Path(tfds.core.constants.get_default_data_dir())
    return root / "tfstiffness_vocab" / f"{name.replace('/', '_')}_{vocab_size}.txt"


# --------------------------------------------------------------------------------------------
# tfds access
# --------------------------------------------------------------------------------------------


def _unavailable(
    name: str, split: str, root: str, download: bool, reason: str
) -> DatasetUnavailableError:
    why = "cannot be downloaded" if download else "download=False"
    return DatasetUnavailableError(
        f"Data set {name!r} (split {split!r}) is not in data_dir {root!r} and {why} "
        f"({reason}). To use it without network access, prepare it on a connected machine "
        f"(`tfds build {name}`), then copy the folder ~/tensorflow_datasets/{name} to "
        f"{root}/{name} and pass data_dir={root!r} (or set TFDS_DATA_DIR).",
        name=name, split=split, data_dir=root, reason=reason)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"


#: Seconds to wait for a download host to answer before calling it unreachable.
REACH_TIMEOUT = 5.0


def unreachable_hosts(hosts: list[str], timeout: float = REACH_TIMEOUT) -> list[str]:
    """The hosts (of `hosts`) that do not accept a TCP connection on port 443 in `timeout`.

    Tried in parallel, on daemon threads, so a hanging name lookup cannot hold the caller
    (or the interpreter's exit) longer than `timeout` plus a second.

    Example:
        >>> unreachable_hosts([])
        []
    """
    import socket
    import threading

    reached: set[str] = set()

    def attempt(host: str) -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            reached.add(host)
        except OSError:
            pass

    threads = [threading.Thread(target=attempt, args=(h,), daemon=True) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 1.0)
    return [h for h in hosts if h not in reached]


def _download_hosts(builder: Any) -> list[str]:
    """The hosts a tfds builder downloads its source files from (its registered URLs)."""
    try:
        urls = list(builder.url_infos or {})
    except Exception:  # noqa: BLE001 - no registered checksums: no list to check.
        urls = []
    hosts = sorted({url.split("/")[2] for url in urls if "://" in url})
    return hosts or ["storage.googleapis.com"]


def _downloads(builder: Any) -> bool:
    """Whether the builder's download is tfds's own (not `tfds.testing.mock_data`'s stand-in,
    which needs no network)."""
    method = getattr(type(builder), "download_and_prepare", None)
    return getattr(method, "__module__", "").startswith("tensorflow_datasets.core")


def _tfds_split(name: str, split: str, data_dir, download: bool) -> tf.data.Dataset:
    """One split of a tfds set from `data_dir`, downloaded first when missing and allowed.

    A set that is not prepared in `data_dir` is only downloaded when every host of its
    source files answers; otherwise it fails at once (tfds itself would retry for minutes).
    """
    root = str(data_dir) if data_dir else tfds.core.constants.get_default_data_dir()
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    try:
        # tfds warns that an empty data_dir has no dataset_info.json: said better below.
        absl_logger.setLevel(logging.ERROR)
        builder = tfds.builder(name, data_dir=data_dir)
        root = str(getattr(builder, "data_dir_root", root))
        prepared = builder.is_prepared()
    except Exception as err:  # Whatever tfds raised, the user gets one clear error.
        raise _unavailable(name, split, root, download, _first_line(err)) from err
    finally:
        absl_logger.setLevel(level)
    if not prepared:
        missing = FileNotFoundError(f"no prepared copy of {name!r} in {builder.data_dir}")
        if not download:
            raise _unavailable(name, split, root, download, "no prepared copy there") from missing
        unreachable = unreachable_hosts(_download_hosts(builder)) if _downloads(builder) else []
        if unreachable:
            raise _unavailable(
                name, split, root, download,
                f"no prepared copy there, and no connection to {', '.join(unreachable)}",
            ) from ConnectionError(f"no connection to {', '.join(unreachable)} (port 443) "
                                   f"within {REACH_TIMEOUT:g} s")
        try:
            builder.download_and_prepare()
        except Exception as err:
            raise _unavailable(name, split, root, download, _first_line(err)) from err
    try:
        return builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as err:  # tfds' "could not find data in ..." (download=False).
        raise _unavailable(name, split, root, download, _first_line(err)) from err


def _image_dataset(name, split, data_dir, download, normalize):
    mean, std = (np.asarray(v, np.float32) for v in NORMALIZATION[name])

    def prepare(example):
        image = tf.cast(example["image"], tf.float32) / 255.0
        if normalize:
            image = (image - mean) / std
        return image, example["label"]

    ds = _tfds_split(name, split, data_dir, download)
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE), _IMAGE_CLASS_NAMES[name]


def _standardize(text: tf.Tensor) -> tf.Tensor:
    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")  # IMDB's HTML line breaks.
    return tf.strings.regex_replace(text, r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']", " ")


def _text_dataset(name, split, data_dir, download, vocab_size, sequence_length):
    spec = _TEXT[name]
    base_split = re.match(r"[A-Za-z_]*", split).group(0)
    if base_split in spec.unlabelled_splits:
        raise ValueError(f"split {split!r} of {name!r} has no labels (they are -1)")
    path = vocabulary_path(name, vocab_size, data_dir)
    if path.exists():
        # Only the file's own line breaks separate tokens (tokens may hold other
        # Unicode line separators, which str.splitlines would split on).
        tokens = path.read_text(encoding="utf-8").split("\n")[:-1]
        vectorizer = _vectorizer(vocab_size, sequence_length, tokens)
    else:
        vectorizer = _vectorizer(vocab_size, sequence_length)
        train = _tfds_split(name, "train", data_dir, download)
        vectorizer.adapt(train.map(lambda ex: ex[spec.feature]).batch(1024))
        _write_atomically(path, vectorizer.get_vocabulary(include_special_tokens=False))

    def prepare(example):
        return tf.cast(vectorizer(example[spec.feature]), tf.int32), example["label"]

    ds = _tfds_split(name, split, data_dir, download)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    vocabulary = tuple(str(t) for t in vectorizer.get_vocabulary())
    return ds, vocabulary, ("negative", "positive")


def _vectorizer(vocab_size: int, sequence_length: int, vocabulary=None):
    return keras.layers.TextVectorization(
        max_tokens=vocab_size,
        standardize=_standardize,
        split="whitespace",
        output_mode="int",
        output_sequence_length=sequence_length,
        vocabulary=vocabulary or None,
    )


def _write_atomically(path: Path, tokens: list[str]) -> None:
    # A reader of a half-written vocabulary would silently map texts to other ids.
    with atomic_write(path, "w") as f:
        f.write("".join(f"{t}\n" for t in tokens))


def _to_numpy(ds: tf.data.Dataset, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for xb, yb in ds.batch(chunk).as_numpy_iterator():
        xs.append(xb)
        ys.append(yb)
    if not xs:  # Empty split or max_examples=0: keep the element shape and dtype.
        x_spec = ds.element_spec[0]
        return (np.zeros((0, *x_spec.shape), x_spec.dtype.as_numpy_dtype),
                np.zeros((0,), np.int64))
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Synthetic sets
# --------------------------------------------------------------------------------------------


def _split_position(split: str) -> int:
    if split not in _SYNTHETIC_SPLITS:
        raise ValueError(f"split: synthetic data sets have splits {_SYNTHETIC_SPLITS}, "
                         f"got {split!r}")
    return _SYNTHETIC_SPLITS.index(split)


def _every_third_per_class(y: np.ndarray, position: int) -> np.ndarray:
    keep = np.zeros(len(y), bool)
    for c in np.unique(y):
        keep[np.flatnonzero(y == c)[position::3]] = True
    return np.flatnonzero(keep)  # Keeps the generator's (shuffled) order.


def _generic(names: str, count: int) -> tuple[str, ...]:
    return tuple(f"{names}_{i}" for i in range(count))


def _load_synthetic(name, split, seed, vocab_size, sequence_length, kwargs,
                    normalize=True) -> LoadedData:
    position = _split_position(split)
    common = {"name": name, "split": split, "y_coarse": None, "coarse_names": None,
              "fine_to_coarse": None}
    if name == "two_arcs":
        x, y = synthetic.two_arcs_grid(**kwargs)
        return LoadedData(x=x, y=y, class_names=("arc_0", "arc_1"), num_classes=2, **common)
    if name == "synthetic_text":
        kwargs = {"num_examples": 1000, "num_classes": 2, **kwargs}
        per_split = kwargs.pop("num_examples")
        tokens, y = synthetic.synthetic_text(
            3 * per_split, vocab_size=vocab_size or 100, sequence_length=sequence_length or 32,
            seed=seed, **kwargs)
        # Examples are i.i.d. given the (fixed) indicative tokens: every third one per split.
        return LoadedData(x=tokens[position::3], y=y[position::3],
                          class_names=_generic("class", kwargs["num_classes"]),
                          num_classes=kwargs["num_classes"], **common)
    if name == "gaussian_blobs":
        kwargs = {"num_classes": 3, "num_per_class": 100, "dim": 2, "spread": 0.5, **kwargs}
        kwargs["num_per_class"] *= 3
        x, y = synthetic.gaussian_blobs(seed=seed, **kwargs)
        x = _standardized_by_train_split(x, y) if normalize else x
        keep = _every_third_per_class(y, position)
        return LoadedData(x=x[keep], y=y[keep], class_names=_generic("blob", kwargs["num_classes"]),
                          num_classes=kwargs["num_classes"], **common)
    # hierarchical_images
    kwargs = {"num_per_class": 50, "num_superclasses": 20, "classes_per_superclass": 5, **kwargs}
    fine_to_coarse = synthetic.hierarchical_fine_to_coarse(
        kwargs["num_superclasses"], kwargs["classes_per_superclass"])
    kwargs["num_per_class"] *= 3
    x, y, y_coarse = synthetic.hierarchical_images(seed=seed, **kwargs)
    x = _standardized_by_train_split(x, y) if normalize else x
    keep = _every_third_per_class(y, position)
    return LoadedData(
        x=x[keep], y=y[keep], y_coarse=y_coarse[keep],
        class_names=_generic("class", len(fine_to_coarse)),
        coarse_names=_generic("superclass", kwargs["num_superclasses"]),
        fine_to_coarse=fine_to_coarse, num_classes=len(fine_to_coarse), name=name, split=split)


def _standardized_by_train_split(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x standardised per channel (last axis) with the mean and std of the train split."""
    train = x[_every_third_per_class(y, _SYNTHETIC_SPLITS.index("train"))]
    axes = tuple(range(train.ndim - 1))
    mean = train.mean(axis=axes, dtype=np.float64)
    std = train.std(axis=axes, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)  # A constant channel is only centred.
    return ((x - mean) / std).astype(np.float32)


# --------------------------------------------------------------------------------------------
# MNIST-1D
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The standard MNIST-1D split, generated once per process (a few seconds), offline."""
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError("mnist1d: the package is missing; `pip install mnist1d` (a "
                          "dependency of tfstiffness) generates MNIST-1D offline") from err
    # make_dataset seeds the global numpy and random generators: leave the caller's intact.
    numpy_state, random_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(get_dataset_args())  # Not get_dataset: that downloads.
    finally:
        np.random.set_state(numpy_state)
        random.setstate(random_state)
    arrays = {"train": (generated["x"], generated["y"]),
              "test": (generated["x_test"], generated["y_test"])}
    arrays = {split: (x.astype(np.float32), y.astype(np.int64))
              for split, (x, y) in arrays.items()}
    for split, (x, _) in arrays.items():
        x.setflags(write=False)  # Shared by every call: nobody may change the cache.
        if len(x) != MNIST1D_SPLITS[split]:
            raise RuntimeError(f"mnist1d generated {len(x)} {split} examples, expected "
                               f"{MNIST1D_SPLITS[split]}: an incompatible mnist1d version")
    return arrays


def _load_mnist1d(split: str, normalize: bool) -> LoadedData:
    if split not in MNIST1D_SPLITS:
        raise ValueError(f"split: mnist1d has the standard splits {tuple(MNIST1D_SPLITS)}, "
                         f"got {split!r}")
    if not normalize:
        raise ValueError("normalize: mnist1d is generated standardised (mean 0, std 1); it "
                         "has no unnormalised form, so normalize=False is not available")
    x, y = _mnist1d_arrays()[split]
    return LoadedData(x=x.copy(), y=y.copy(), y_coarse=None,
                      class_names=tuple(str(d) for d in range(10)), coarse_names=None,
                      fine_to_coarse=None, num_classes=10, name="mnist1d", split=split)


def _take(loaded: LoadedData, count: int) -> LoadedData:
    coarse = None if loaded.y_coarse is None else loaded.y_coarse[:count]
    return dataclasses.replace(loaded, x=loaded.x[:count], y=loaded.y[:count], y_coarse=coarse)
