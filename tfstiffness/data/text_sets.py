"""The tfds text sets (GLUE SST-2, IMDB reviews): standardised, split on whitespace and mapped
to int32 ids by a vocabulary adapted on the training split and kept under ``data_dir``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

from tfstiffness.data.tfds_access import tfds_split
from tfstiffness.outputs.atomic import atomic_write

__all__ = ["TEXT_DEFAULTS", "TEXT_SETS", "text_dataset", "vocabulary_path"]


@dataclass(frozen=True)
class _TextSpec:
    feature: str  # Name of the text feature in the tfds examples.
    unlabelled_splits: tuple[str, ...]  # Splits whose labels are -1.


TEXT_SETS: dict[str, _TextSpec] = {
    "glue/sst2": _TextSpec("sentence", ("test",)),
    "imdb_reviews": _TextSpec("text", ("unsupervised",)),
}
TEXT_DEFAULTS = {"vocab_size": 20000, "sequence_length": 128}


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


def _standardize(text: tf.Tensor) -> tf.Tensor:
    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")  # IMDB's HTML line breaks.
    return tf.strings.regex_replace(text, r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']", " ")


def text_dataset(name: str, split: str, data_dir: str | os.PathLike | None, download: bool,
                 vocab_size: int, sequence_length: int
                 ) -> tuple[tf.data.Dataset, tuple[str, ...], tuple[str, ...]]:
    """(dataset of (token ids, label), vocabulary, class names) of a tfds text set, mapped by
    the vocabulary adapted on its training split (read back from `vocabulary_path` when
    saved there before)."""
    spec = TEXT_SETS[name]
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
        train = tfds_split(name, "train", data_dir, download)
        vectorizer.adapt(train.map(lambda ex: ex[spec.feature]).batch(1024))
        _write_atomically(path, vectorizer.get_vocabulary(include_special_tokens=False))

    def prepare(example):
        return tf.cast(vectorizer(example[spec.feature]), tf.int32), example["label"]

    ds = tfds_split(name, split, data_dir, download)
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
