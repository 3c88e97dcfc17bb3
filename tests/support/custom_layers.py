"""A custom layer that a saved model needs back (`--custom_objects tests.support.custom_layers:Scale`)."""

import keras


class Scale(keras.layers.Layer):
    """Multiplies each feature by a trained weight: a layer Keras cannot load by itself."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, inputs):
        return inputs * self.w
