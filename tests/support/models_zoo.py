"""Small models of every supported layer type, shared by the exactness tests."""

from __future__ import annotations

import keras
import numpy as np

NUM_CLASSES = 3


def dense_net():
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(7, activation="tanh"),
        keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(NUM_CLASSES),
    ], name="dense_net")


def conv_net():
    return keras.Sequential([
        keras.Input((10, 10, 2)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(5, 3, strides=2, padding="valid", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES),
    ], name="conv_net")


def text_net(vocab=12, length=6):
    tokens = keras.Input((length,), dtype="int32")
    h = keras.layers.Embedding(vocab, 8)(tokens)
    h = keras.layers.Add()([h, keras.layers.Dense(8)(h)])
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    h = keras.layers.LayerNormalization()(keras.layers.Add()([h, attended]))
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(NUM_CLASSES)(h), name="text_net")


def shared_bn_dropout_net():
    """Functional: a layer used twice, BatchNormalization and Dropout, a nested model."""
    inputs = keras.Input((5,))
    shared = keras.layers.Dense(5, activation="tanh", name="shared")
    h = shared(shared(inputs))
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.5)(h)
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu")],
                             name="inner")
    model = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(inner(h)), name="shared_net")
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    rng = np.random.default_rng(1)  # moving statistics away from (0, 1) to test them
    bn.moving_mean.assign(rng.normal(size=5).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2, size=5).astype("float32"))
    return model


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.hidden = keras.layers.Dense(6, activation="relu")
        self.norm = keras.layers.LayerNormalization()
        self.head = keras.layers.Dense(NUM_CLASSES)

    def call(self, inputs, training=False):
        return self.head(self.norm(self.hidden(inputs)))


def subclassed_net():
    return Subclassed()


def data_for(name: str, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_CLASSES, n)
    if name == "conv_net":
        return rng.normal(size=(n, 10, 10, 2)).astype("float32"), y
    if name == "text_net":
        return rng.integers(0, 12, size=(n, 6)).astype("int32"), y
    return rng.normal(size=(n, 5)).astype("float32"), y


ZOO = {
    "dense_net": dense_net,
    "conv_net": conv_net,
    "text_net": text_net,
    "shared_net": shared_bn_dropout_net,
    "subclassed": subclassed_net,
}
