"""One entry point for the data sets of the stiffness studies: `load`.

Real data sets come from TensorFlow Datasets (tfds): ``"mnist"``, ``"fashion_mnist"``,
``"cifar10"``, ``"cifar100"``, ``"glue/sst2"``, ``"imdb_reviews"``. The synthetic ones of
`tfstiffness.data.synthetic` load through the same function: ``"hierarchical_images"``,
``"two_arcs"``, ``"gaussian_blobs"``, ``"synthetic_text"``. ``"mnist1d"`` is MNIST-1D
(Greydanus 2020), a real published benchmark generated offline from its templates by the
``mnist1d`` package: the standard 4,000 / 1,000 train / test split (`MNIST1D_SPLITS`).

Images are float32, scaled to [0, 1], then (``normalize=True``, the default) standardised per
channel with the published training-set statistics in `NORMALIZATION`:

| data set      | mean                       | std                        |
|---------------|----------------------------|----------------------------|
| mnist         | 0.1307                     | 0.3081                     |
| fashion_mnist | 0.2860                     | 0.3530                     |
| cifar10       | (0.4914, 0.4822, 0.4465)   | (0.2470, 0.2435, 0.2616)   |
| cifar100      | (0.5071, 0.4865, 0.4409)   | (0.2673, 0.2564, 0.2762)   |

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

Where each source lives: `image_sets` and `text_sets` (tfds, through `tfds_access`),
`synthetic_sets`, `mnist1d_set`; what they return: `loaded_data` (`LoadedData`,
`balanced_subset`).

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

import os
from typing import Any

import numpy as np  # noqa: F401 (the module docstring's example uses it)
import tensorflow as tf

from tfstiffness.data.cifar100_labels import COARSE_NAMES, FINE_TO_COARSE
from tfstiffness.data.image_sets import NORMALIZATION, image_dataset
from tfstiffness.data.loaded_data import LoadedData, first_examples
from tfstiffness.data.mnist1d_set import load_mnist1d
from tfstiffness.data.synthetic_sets import SYNTHETIC_SETS, load_synthetic
from tfstiffness.data.text_sets import TEXT_DEFAULTS, TEXT_SETS, text_dataset
from tfstiffness.data.tfds_access import to_numpy

__all__ = ["DATASETS", "load"]

#: Every name `load` accepts.
DATASETS: tuple[str, ...] = (*NORMALIZATION, "mnist1d", *TEXT_SETS, *SYNTHETIC_SETS)


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
    """Loads one split of a data set, preprocessed for the stiffness studies.

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
    _check_arguments(name, max_examples, batch_size, vocab_size, sequence_length,
                     generator_kwargs)
    if name not in (*SYNTHETIC_SETS, "mnist1d"):
        return _load_from_tfds(name, split, data_dir, as_numpy, batch_size, max_examples,
                               normalize, download, vocab_size, sequence_length)
    if name == "mnist1d":
        loaded = load_mnist1d(split, normalize)
    else:
        loaded = load_synthetic(name, split, seed, vocab_size, sequence_length,
                                generator_kwargs, normalize)
    if max_examples is not None:
        loaded = first_examples(loaded, max_examples)
    if as_numpy:
        return loaded
    ds = tf.data.Dataset.from_tensor_slices((loaded.x, loaded.y))
    return ds.batch(batch_size) if batch_size else ds


def _check_arguments(name: str, max_examples: int | None, batch_size: int | None,
                     vocab_size: int | None, sequence_length: int | None,
                     generator_kwargs: dict[str, Any]) -> None:
    """Refuses an unknown name and arguments out of range or not for this data set."""
    if name not in DATASETS:
        raise ValueError(f"name: unknown data set {name!r}; expected one of {DATASETS}")
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be non-negative, got {max_examples}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    text = name in TEXT_SETS or name == "synthetic_text"
    if not text and (vocab_size is not None or sequence_length is not None):
        raise ValueError(f"vocab_size and sequence_length apply to text data sets, not {name!r}")
    if generator_kwargs and name not in SYNTHETIC_SETS:
        raise ValueError(f"unexpected arguments for {name!r}: {sorted(generator_kwargs)}")


def _load_from_tfds(name: str, split: str, data_dir: str | os.PathLike | None, as_numpy: bool,
                    batch_size: int | None, max_examples: int | None, normalize: bool,
                    download: bool, vocab_size: int | None,
                    sequence_length: int | None) -> LoadedData | tf.data.Dataset:
    """A tfds image or text set, as `load` returns it (CIFAR-100's super-classes from the
    package's table)."""
    if name in TEXT_SETS:
        vocab_size = vocab_size or TEXT_DEFAULTS["vocab_size"]
        sequence_length = sequence_length or TEXT_DEFAULTS["sequence_length"]
        ds, vocabulary, class_names = text_dataset(
            name, split, data_dir, download, vocab_size, sequence_length)
    else:
        ds, class_names = image_dataset(name, split, data_dir, download, normalize)
        vocabulary = None
    if max_examples is not None:
        ds = ds.take(max_examples)
    if not as_numpy:
        return ds.batch(batch_size) if batch_size else ds

    x, y = to_numpy(ds, batch_size or 1024)
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
