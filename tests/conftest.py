"""Shared test set-up: absl flags parsed, quiet TensorFlow, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from absl import flags


def pytest_configure(config):
    # absl binaries read FLAGS; under pytest nobody calls app.run, so mark them parsed.
    flags.FLAGS.mark_as_parsed()


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield
