"""The TensorFlow, Keras and Keras backend the engine runs on, checked before it loads them.

tfstiffness does not install TensorFlow itself (as tensorflow-probability does not): it uses
the `tensorflow` or `tensorflow-cpu` (or tensorflow-macos, tf-nightly, ...) distribution the
user already has. So it checks, once per process, before the engine imports TensorFlow:

- a TensorFlow 2.16-2.21 is installed (the Keras 3 era), and only one distribution of it;
- Keras 3 (3.10 or later) is what `import keras` gives, and TF_USE_LEGACY_KERAS is not set
  (that makes `tf.keras` the Keras 2 package tf_keras, whose models the engine cannot read);
- the Keras backend is TensorFlow (KERAS_BACKEND or keras.json).

Versions come from the installed distributions' metadata, so nothing heavy is imported; a
TensorFlow without metadata (built from source) is imported to read its version. A newer
TensorFlow than the tested range gets a warning; anything else unsupported raises
`UnsupportedEnvironmentError` naming what is installed and what is needed.

This module imports only the standard library.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import warnings

from tfstiffness.errors import UnsupportedEnvironmentError

# Tested minor versions, inclusive: TensorFlow 2.16 made Keras 3 its Keras.
TENSORFLOW_RANGE = ((2, 16), (2, 21))
KERAS_MINIMUM = (3, 10)

# Every name TensorFlow is published under; each installs the same `tensorflow` package.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                            "tensorflow-macos", "tensorflow-aarch64", "tf-nightly",
                            "tf-nightly-cpu")

_INSTALL = ('pip install "tfstiffness[tf]" on a fresh environment, or beside your own: '
            'pip install "tensorflow-cpu>=2.16,<2.22" (or "tensorflow[and-cuda]>=2.16,<2.22")')
_checked = False


def _range_text() -> str:
    (lo_major, lo_minor), (hi_major, hi_minor) = TENSORFLOW_RANGE
    return f"TensorFlow {lo_major}.{lo_minor} to {hi_major}.{hi_minor}"


def _minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def installed_tensorflow() -> dict[str, str]:
    """Returns {distribution: version} of the TensorFlow distributions installed here."""
    found = {}
    for name in TENSORFLOW_DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def keras_backend() -> tuple[str, str]:
    """Returns (backend, where it was set) as Keras will choose it, without importing Keras."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):
        return keras.config.backend(), "the Keras already imported in this process"
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    # Keras' own look-up: $KERAS_HOME, else ~/.keras (else /tmp/.keras when not writable).
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    for directory in (home, os.path.join("/tmp", ".keras")):
        path = os.path.join(directory, "keras.json")
        try:
            with open(path) as f:
                backend = json.load(f).get("backend")
        except (OSError, ValueError, AttributeError):
            continue
        if backend:
            return backend, path
    return "tensorflow", "the default"


def check() -> None:
    """Raises UnsupportedEnvironmentError unless TensorFlow, Keras and the backend fit.

    Runs its checks once per process, the first time it succeeds.

    Raises:
        UnsupportedEnvironmentError: no TensorFlow, a TensorFlow older than 2.16, two different
            TensorFlow distributions, Keras 2 (or TF_USE_LEGACY_KERAS set), Keras older than
            3.10, or a Keras backend other than TensorFlow.
    """
    global _checked
    if _checked:
        return
    _check_tensorflow()
    _check_keras()
    _checked = True


def _check_tensorflow() -> None:
    found = installed_tensorflow()
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{name} {version}" for name, version in found.items())
        raise UnsupportedEnvironmentError(
            f"Two TensorFlow distributions of different versions are installed: {listed}. "
            "They write the same `tensorflow` package, so its files are now a mix. Keep the "
            "one you want (pip uninstall <the other>, then pip install --force-reinstall "
            "<the one you keep>).")
    if found:
        name, version = next(iter(found.items()))
        where = f"{name} {version}"
    else:
        if importlib.util.find_spec("tensorflow") is None:
            raise UnsupportedEnvironmentError(
                f"TensorFlow is not installed. tfstiffness needs {_range_text()}: {_INSTALL}.")
        import tensorflow as tf  # No metadata (built from source, ...): ask the package.

        version = tf.__version__
        where = f"tensorflow {version} (no package metadata)"
    minor = _minor(version)
    if minor is None or minor < TENSORFLOW_RANGE[0]:
        raise UnsupportedEnvironmentError(
            f"{where} is installed; tfstiffness needs {_range_text()} (Keras 3 is TensorFlow's "
            f"Keras from 2.16 on): {_INSTALL}.")
    if minor > TENSORFLOW_RANGE[1]:
        warnings.warn(f"{where} is newer than tfstiffness has been tested on ({_range_text()}); "
                      "its exactness tests (python -m pytest) tell whether it works here.",
                      stacklevel=3)


def _check_keras() -> None:
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "")
    if legacy.strip().lower() in ("1", "true", "yes"):
        raise UnsupportedEnvironmentError(
            f"TF_USE_LEGACY_KERAS={legacy} makes tf.keras the Keras 2 package tf_keras; "
            "tfstiffness works on Keras 3 models (`import keras`). Unset TF_USE_LEGACY_KERAS.")
    try:
        version = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        version = None
    minor = _minor(version) if version else None
    if minor is None or minor < KERAS_MINIMUM:
        have = f"keras {version} is installed" if version else "Keras is not installed"
        raise UnsupportedEnvironmentError(
            f"{have}; tfstiffness needs Keras {KERAS_MINIMUM[0]}.{KERAS_MINIMUM[1]} or later "
            "in 3.x (Keras 2, as with TensorFlow 2.15 and older, is not supported): "
            'pip install "keras>=3.10,<4".')
    backend, source = keras_backend()
    if backend != "tensorflow":
        raise UnsupportedEnvironmentError(
            f"The Keras backend is {backend!r} (from {source}); tfstiffness computes with "
            "TensorFlow and needs the 'tensorflow' backend: set KERAS_BACKEND=tensorflow "
            "before Keras is first imported.")
