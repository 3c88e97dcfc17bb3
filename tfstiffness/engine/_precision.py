"""Float32 arithmetic for models under a mixed-precision policy.

Under `mixed_float16` / `mixed_bfloat16` a layer keeps float32 variables but computes in 16
bits, so its gradients are only 16-bit accurate (about 1e-2 relative error on a Gram matrix).
The toolkit instead runs such layers with a float32 compute policy, switched on the layer
instances only while it computes: the numbers are those of the same model in float32, and the
user's model is left as it was. Variables stored in 16 bits cannot be made more accurate than
they are; such a model gets a warning.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator

import keras

_FLOAT32 = "float32"


def _layers(model: keras.Model) -> list:
    return list(model._flatten_layers(include_self=True, recursive=True))


def low_precision_layers(model: keras.Model) -> list:
    """Layers that compute in a dtype other than float32 (mixed-precision policies)."""
    return [layer for layer in _layers(model)
            if getattr(layer, "compute_dtype", _FLOAT32) in ("float16", "bfloat16")
            and getattr(getattr(layer, "dtype_policy", None), "quantization_mode", None) is None]


def warn_low_precision_variables(model: keras.Model) -> None:
    low = sorted({v.path for v in model.trainable_variables
                  if str(v.dtype) in ("float16", "bfloat16")})
    if low:
        warnings.warn(
            f"model: {len(low)} trainable variable(s) are stored in 16 bits (e.g. {low[0]!r}); "
            "their gradients, and so the Gram matrix, are only 16-bit accurate. Build the "
            "model with float32 variables (a mixed-precision policy keeps them float32) for "
            "exact stiffness.", UserWarning, stacklevel=4)


@contextlib.contextmanager
def float32_compute(layers: list) -> Iterator[None]:
    """Runs `layers` with a float32 compute policy; restores their policies on exit."""
    saved = [(layer, layer.dtype_policy) for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = _FLOAT32
        yield
    finally:
        for layer, policy in saved:
            layer.dtype_policy = policy


def in_float32(model: keras.Model, fn: Callable) -> Callable:
    """`fn` run with the model's low-precision layers computing in float32 (or `fn` itself)."""
    layers = low_precision_layers(model)
    if not layers:
        return fn

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with float32_compute(layers):
            return fn(*args, **kwargs)

    return wrapped
