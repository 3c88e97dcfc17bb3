"""The tfds image sets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100): their published
normalisation, class names and preprocessing."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfstiffness.data.cifar100_labels import FINE_NAMES
from tfstiffness.data.tfds_access import tfds_split

__all__ = ["IMAGE_CLASS_NAMES", "NORMALIZATION", "image_dataset"]

#: Per-channel (mean, std) of the training images scaled to [0, 1] (the usual published
#: values, e.g. those of the torchvision examples and of the CIFAR papers' code).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

IMAGE_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
    "cifar100": FINE_NAMES,
}



def image_dataset(name: str, split: str, data_dir: str | os.PathLike | None, download: bool,
                  normalize: bool) -> tuple[tf.data.Dataset, tuple[str, ...]]:
    """(dataset of (image, label), class names) of a tfds image set: float32 images scaled to
    [0, 1], standardised with `NORMALIZATION` when `normalize`."""
    mean, std = (np.asarray(v, np.float32) for v in NORMALIZATION[name])

    def prepare(example):
        image = tf.cast(example["image"], tf.float32) / 255.0
        if normalize:
            image = (image - mean) / std
        return image, example["label"]

    ds = tfds_split(name, split, data_dir, download)
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE), IMAGE_CLASS_NAMES[name]
