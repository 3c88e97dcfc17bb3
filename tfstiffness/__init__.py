"""tfstiffness: stiffness (per-example gradient alignment) of TensorFlow 2 / Keras 3 models."""

from tfstiffness.gram import GradientGram, gradient_gram

__version__ = "0.1.0"

__all__ = ["GradientGram", "gradient_gram"]
