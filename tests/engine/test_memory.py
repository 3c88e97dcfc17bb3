"""Memory budgets follow the device's free memory (CPU here; the GPU branch simulated)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error
from tfstiffness.engine import memory, run


def test_budgets_follow_what_they_are_given():
    assert memory.factor_cache_bytes(None) == memory.FACTOR_CACHE_CAP
    assert memory.factor_cache_bytes(64 << 30) == memory.FACTOR_CACHE_CAP  # capped
    assert memory.factor_cache_bytes(2 << 30) == (2 << 30) // 8
    assert memory.factor_cache_bytes(1 << 20) == 16 << 20  # the floor
    assert memory.generic_block_bytes(64 << 30) == memory.GENERIC_BLOCK_CAP
    assert memory.generic_block_bytes(1 << 30) == (1 << 30) // 32


def test_cpu_budget_is_the_hosts_available_memory():
    assert memory.device_available_bytes("CPU:0") == pytest.approx(
        memory.host_available_bytes(), rel=0.2)


def _model():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(3)])
    return model


def test_a_small_device_gets_a_small_cache_and_blocks_and_the_same_numbers(monkeypatch):
    model = _model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 6)).astype("float32"), rng.integers(0, 3, 12)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    big = run.prepare_run(model, x, y, loss, None, None, "vmap", None, None)
    monkeypatch.setattr(memory, "device_available_bytes", lambda device=None: 1 << 20)
    small = run.prepare_run(model, x, y, loss, None, None, "vmap", None, None)
    assert big.cache_bytes > small.cache_bytes == 16 << 20
    per_example = 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert run.default_block_size(model, "vmap", 10**9, 1 << 20) == (16 << 20) // per_example
    ref, _ = brute_force_gram(model, loss, x, y)
    assert relative_error(tfs.gradient_gram(model, x, y, loss=loss, batch_size=5).total,
                          ref) <= 1e-5


def test_gpu_budget_is_its_limit_minus_what_tensorflow_holds(monkeypatch):
    # No GPU here: TensorFlow's two calls are simulated, as a 4 GiB card holding 1 GiB.
    monkeypatch.setattr(memory, "gpu_memory_limit", lambda device: 4 << 30)
    monkeypatch.setattr(tf.config.experimental, "get_memory_info",
                        lambda device: {"current": 1 << 30, "peak": 2 << 30})
    assert memory.device_available_bytes("GPU:0") == 3 << 30
    assert memory.factor_cache_bytes(memory.device_available_bytes("GPU:0")) == (3 << 30) // 8
    monkeypatch.setattr(memory, "gpu_memory_limit", lambda device: None)
    assert memory.device_available_bytes("GPU:0") is None  # unknown: the caps apply
