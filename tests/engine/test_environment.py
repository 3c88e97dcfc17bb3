"""The TensorFlow / Keras / backend check: what is refused, with which message, and when."""

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support import REPO_ROOT
from tfstiffness.engine import environment
from tfstiffness.errors import UnsupportedEnvironmentError


@pytest.fixture
def installed(monkeypatch):
    """Pretends the given distributions (name -> version) are all that is installed."""
    monkeypatch.setattr(environment, "_checked", False)
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)

    def pretend(versions):
        def version(name):
            if name in versions:
                return versions[name]
            raise importlib.metadata.PackageNotFoundError(name)

        monkeypatch.setattr(importlib.metadata, "version", version)

    return pretend


def test_the_environment_running_the_tests_passes():
    environment.check()
    assert environment.keras_backend()[0] == "tensorflow"


@pytest.mark.parametrize("tf_version", ["2.16.2", "2.18.1", "2.21.0", "2.21.0rc1"])
def test_tensorflow_2_16_to_2_21_pass(installed, tf_version):
    installed({"tensorflow-cpu": tf_version, "keras": "3.15.1"})
    environment.check()


def test_tensorflow_2_15_is_refused_naming_both_versions(installed):
    installed({"tensorflow": "2.15.1", "keras": "2.15.0"})
    with pytest.raises(UnsupportedEnvironmentError) as info:
        environment.check()
    message = str(info.value)
    assert "tensorflow 2.15.1 is installed" in message
    assert "tfstiffness needs TensorFlow 2.16 to 2.21" in message
    assert 'pip install "tfstiffness[tf]"' in message


def test_no_tensorflow_at_all_is_refused_with_how_to_install(installed, monkeypatch):
    installed({"keras": "3.15.1"})
    monkeypatch.setattr(environment.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UnsupportedEnvironmentError,
                       match=r"TensorFlow is not installed\. tfstiffness needs TensorFlow 2\.16 "
                             r"to 2\.21: pip install \"tfstiffness\[tf\]\""):
        environment.check()


def test_two_tensorflow_distributions_of_different_versions_are_refused(installed):
    installed({"tensorflow": "2.21.0", "tensorflow-cpu": "2.16.2", "keras": "3.15.1"})
    with pytest.raises(UnsupportedEnvironmentError,
                       match="Two TensorFlow distributions of different versions are installed: "
                             "tensorflow 2.21.0, tensorflow-cpu 2.16.2"):
        environment.check()


def test_companion_distributions_of_one_version_pass(installed):
    # On Windows, `tensorflow` installs `tensorflow-intel` of the same version beside it.
    installed({"tensorflow": "2.20.0", "tensorflow-intel": "2.20.0", "keras": "3.15.1"})
    environment.check()


def test_a_newer_tensorflow_warns_but_runs(installed):
    installed({"tf-nightly": "2.22.0.dev20261201", "keras": "3.15.1"})
    with pytest.warns(UserWarning, match=r"tf-nightly 2\.22\.0\.dev20261201 is newer than "
                                         r"tfstiffness has been tested on \(TensorFlow 2\.16"):
        environment.check()


@pytest.mark.parametrize("keras_version", ["2.15.0", "3.3.3", None])
def test_keras_2_or_an_old_keras_3_is_refused(installed, keras_version):
    installed({"tensorflow": "2.16.2", **({"keras": keras_version} if keras_version else {})})
    have = f"keras {keras_version} is installed" if keras_version else "Keras is not installed"
    with pytest.raises(UnsupportedEnvironmentError,
                       match=f"{have}; tfstiffness needs Keras 3.10 or later in 3.x"):
        environment.check()


def test_legacy_keras_switch_is_refused(installed, monkeypatch):
    installed({"tensorflow": "2.18.1", "keras": "3.15.1"})
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    with pytest.raises(UnsupportedEnvironmentError,
                       match="TF_USE_LEGACY_KERAS=1 makes tf.keras the Keras 2 package tf_keras"):
        environment.check()


def test_a_passing_check_is_not_repeated(installed):
    installed({"tensorflow": "2.18.1", "keras": "3.15.1"})
    environment.check()
    installed({"tensorflow": "2.15.1", "keras": "3.15.1"})
    environment.check()  # Checked once per process: no second metadata look-up.


# A fresh process: Keras must not be imported yet, and the check must come before TensorFlow.
_FIRST_CALL = textwrap.dedent("""
    import sys
    import tfstiffness as tfs
    try:
        tfs.gradient_gram
    except ImportError as error:
        print(type(error).__name__, error)
    print("tensorflow imported:", "tensorflow" in sys.modules, "keras imported:",
          "keras" in sys.modules)
""")


def _first_call(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    clean["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), clean.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _FIRST_CALL], capture_output=True, text=True,
                          env={**clean, **env}, cwd=tmp_path, timeout=300, check=True)
    return done.stdout


def test_another_keras_backend_is_refused_before_tensorflow_loads(tmp_path):
    out = _first_call(tmp_path, KERAS_BACKEND="jax")
    assert ("UnsupportedEnvironmentError The Keras backend is 'jax' (from KERAS_BACKEND); "
            "tfstiffness computes with TensorFlow and needs the 'tensorflow' backend: set "
            "KERAS_BACKEND=tensorflow") in out
    assert "tensorflow imported: False keras imported: False" in out


def test_a_backend_chosen_in_keras_json_is_refused_naming_the_file(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    out = _first_call(tmp_path, KERAS_HOME=str(tmp_path))
    assert (f"The Keras backend is 'torch' (from {tmp_path / 'keras.json'})") in out
    assert "tensorflow imported: False" in out


def test_catching_errors_checks_and_loads_nothing(tmp_path):
    code = ("import sys, tfstiffness as tfs\n"
            "print(tfs.UnsupportedEnvironmentError.__mro__[1].__name__, "
            "'tensorflow' in sys.modules, 'keras' in sys.modules)")
    clean = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    clean["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), clean.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**clean, "KERAS_BACKEND": "jax"}, timeout=120).stdout
    assert out.split() == ["ImportError", "False", "False"]
