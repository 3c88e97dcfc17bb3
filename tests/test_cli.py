"""Tests of the paper-study binaries: main() on synthetic and mock tfds data, the summary.json
schema, refused flag changes, and resuming after a real SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from absl import app
from absl.testing import flagsaver

from tfstiffness.cifar100_labels import FINE_TO_COARSE
from tfstiffness.cli import cifar100_superclass as superclass_cli
from tfstiffness.cli import class_stiffness as class_cli
from tfstiffness.cli import learning_rate_study as lr_cli
from tfstiffness.cli import text_transformer as text_cli

REPO = Path(__file__).resolve().parents[1]
PAIRS = ("train_train", "train_val", "val_val")


def _summary(out):
    return json.loads((Path(out) / "summary.json").read_text())


def _check_class_schema(summary, num_classes, superclasses):
    """summary.json of the class studies: keys and types."""
    assert set(summary) == {"config", "versions", "results", "run"}
    assert {"python", "tensorflow", "keras", "numpy", "tfstiffness"} <= set(summary["versions"])
    res = summary["results"]
    assert res["num_classes"] == num_classes
    for key in ("train_examples", "val_examples", "train_probe", "val_probe", "parameters"):
        assert isinstance(res[key], int) and res[key] > 0, key
    assert isinstance(res["gram_method"], str)
    epochs = res["epochs"]
    assert [e["epoch"] for e in epochs] == summary["config"]["eval_epochs"]
    assert res["final"] == epochs[-1]
    for entry in epochs:
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert isinstance(entry[key], float), key
        assert 0.0 <= entry["train_accuracy"] <= 1.0
        assert set(entry["stiffness"]) == set(PAIRS)
        for pair in PAIRS:
            assert set(entry["stiffness"][pair]) == {"sign", "cosine"}
            for kind, stats in entry["stiffness"][pair].items():
                expected = {"within", "between"} | ({"superclass_contrast"} if superclasses
                                                    else set())
                assert set(stats) == expected, (pair, kind)
                for value in stats.values():
                    assert value is None or -1.0 <= value <= 1.0 or "contrast" in str(stats)
            assert isinstance(entry["zero_gradients"][pair], int)
        xi = entry["xi"]
        assert set(xi) == {"xi", "status", "bound"}
        assert xi["status"] in ("crossed", "never_crossed", "nonpositive_from_start",
                                "no_pairs")  # no_pairs: one probe example per class.
        assert (xi["xi"] is None) == (xi["status"] != "crossed")
        if xi["status"] != "no_pairs":
            assert isinstance(xi["xi"] if xi["xi"] is not None else xi["bound"], float)
    if superclasses:
        contrast = res["superclass_contrast"]
        assert set(contrast) == set(PAIRS)
        assert all(isinstance(contrast[p][k], float) for p in PAIRS for k in ("sign", "cosine"))
    assert isinstance(summary["run"]["elapsed_s"], float)
    assert len(summary["run"]["epoch_seconds"]) == summary["config"]["epochs"]


def _check_files(out, figures):
    out = Path(out)
    for name in ("config.json", "summary.json", "results.npz"):
        assert (out / name).is_file(), name
    for name in figures:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert not list(out.rglob(".*.tmp"))


def test_cifar100_superclass_main_on_the_synthetic_hierarchy(tmp_path):
    out = tmp_path / "run"
    with flagsaver.flagsaver(output_dir=str(out), epochs=1, synthetic_per_class=2,
                             probe_per_class=2, eval_epochs=[], quiet=True):
        superclass_cli.main(["cifar100_superclass"])
        summary = _summary(out)
        _check_class_schema(summary, 100, superclasses=True)
        assert summary["config"]["dataset"] == "hierarchical_images"
        assert summary["config"]["model"] == "cnn"
        res = np.load(out / "results.npz")
        assert res["train_train/cosine/class_matrix"].shape == (2, 100, 100)
        assert res["val_val/sign/superclass_matrix"].shape == (2, 20, 20)
        # CIFAR-100's table: the first super-class block holds beaver, dolphin, otter, ...
        np.testing.assert_array_equal(res["superclass_order"][:5],
                                      np.flatnonzero(FINE_TO_COARSE == 0))
        _check_files(out, ["class_matrix", "superclass_matrix", "curves",
                           "stiffness_vs_distance"])
        # Same directory, other flags: a usage error naming the flag, not a traceback.
        with flagsaver.flagsaver(epochs=2), pytest.raises(app.UsageError, match="epochs"):
            superclass_cli.main(["cifar100_superclass"])


def test_class_stiffness_main_on_synthetic_images(tmp_path):
    out = tmp_path / "run"
    with flagsaver.flagsaver(output_dir=str(out), epochs=2, synthetic_per_class=6,
                             probe_per_class=3, eval_epochs=["2"], quiet=True):
        class_cli.main(["class_stiffness"])
    summary = _summary(out)
    _check_class_schema(summary, 10, superclasses=True)  # 5 super-classes of 2.
    assert summary["config"]["eval_epochs"] == [0, 2]
    assert summary["config"]["model"] == "fc"
    _check_files(out, ["class_matrix", "curves", "stiffness_vs_distance"])
    with pytest.raises(app.UsageError, match="unexpected"):
        class_cli.main(["class_stiffness", "extra"])


def test_learning_rate_study_main(tmp_path):
    out = tmp_path / "run"
    with flagsaver.flagsaver(output_dir=str(out), epochs=2, learning_rates=["1e-3", "3e-2"],
                             dataset="gaussian_blobs", synthetic_per_class=12,
                             probe_per_class=6, quiet=True):
        lr_cli.main(["learning_rate_study"])
    summary = _summary(out)
    res = summary["results"]
    assert list(res["learning_rates"]) == ["lr=0.001", "lr=0.03"]
    assert [row["learning_rate"] for row in res["table"]] == [0.001, 0.03]
    for entry in res["learning_rates"].values():
        assert [e["epoch"] for e in entry["epochs"]] == [0, 1, 2]
        for e in entry["epochs"]:
            xi = e["xi"]
            assert xi["status"] in ("crossed", "never_crossed", "nonpositive_from_start")
            assert (xi["xi"] is None) == (xi["status"] != "crossed")
        assert set(entry["at_loss_levels"]) == {"within", "between", "xi"}
        assert all(len(v) == len(res["loss_levels"]) for v in entry["at_loss_levels"].values())
    arrays = np.load(out / "results.npz")
    np.testing.assert_array_equal(arrays["learning_rates"], [1e-3, 3e-2])
    assert arrays["lr1/curve_means"].shape == (3, 20)
    _check_files(out, ["by_epoch", "by_train_loss", "stiffness_vs_distance"])
    runs = sorted(p.name for p in (out / "tensorboard").iterdir() if p.is_dir())
    assert runs == ["lr=0.001", "lr=0.03"]  # One HParams run per learning rate.
    with flagsaver.flagsaver(learning_rate=0.1, learning_rates=["0.1"]), \
            pytest.raises(app.UsageError, match="not both"):
        lr_cli.main(["learning_rate_study"])


@pytest.mark.slow  # ~11 s; the mock glue/sst2 test below runs the same binary by default.
def test_text_transformer_main_on_synthetic_text(tmp_path):
    out = tmp_path / "run"
    with flagsaver.flagsaver(output_dir=str(out), epochs=1, synthetic_per_class=10,
                             probe_per_class=3, embed_dim=8, num_blocks=1, sequence_length=12,
                             quiet=True):
        text_cli.main(["text_transformer"])
    summary = _summary(out)
    _check_class_schema(summary, 2, superclasses=False)
    assert summary["results"]["distance_space"] == "pooled"
    _check_files(out, ["class_matrix", "curves", "stiffness_vs_distance"])


# ------------------------------------------------------------------------------------------
# Under tfds.testing.mock_data: the real-data code paths, without a download
# ------------------------------------------------------------------------------------------


@pytest.fixture
def mock_tfds():
    tfds = pytest.importorskip("tensorflow_datasets")
    return tfds.testing.mock_data


def test_class_stiffness_main_on_mock_mnist(tmp_path, mock_tfds):
    out = tmp_path / "run"
    with mock_tfds(num_examples=60), flagsaver.flagsaver(
            output_dir=str(out), dataset="mnist", model="fc", epochs=1, probe_per_class=1,
            data_dir=str(tmp_path / "data"), quiet=True):
        class_cli.main(["class_stiffness"])
    summary = _summary(out)
    _check_class_schema(summary, 10, superclasses=False)
    assert np.load(out / "results.npz")["train_val/cosine/class_matrix"].shape == (2, 10, 10)


def test_cifar100_superclass_main_on_mock_cifar100(tmp_path, mock_tfds):
    out = tmp_path / "run"
    # Mock labels are random: 1000 examples give every one of the 100 classes an example.
    with mock_tfds(num_examples=1000), flagsaver.flagsaver(
            output_dir=str(out), dataset="cifar100", epochs=1, probe_per_class=1,
            max_train_examples=1000, data_dir=str(tmp_path / "data"), quiet=True):
        superclass_cli.main(["cifar100_superclass"])
    summary = _summary(out)
    _check_class_schema(summary, 100, superclasses=True)
    assert summary["results"]["num_superclasses"] == 20


def test_text_transformer_main_on_mock_sst2(tmp_path, mock_tfds):
    out = tmp_path / "run"
    with mock_tfds(num_examples=40), flagsaver.flagsaver(
            output_dir=str(out), dataset="glue/sst2", epochs=1, probe_per_class=2,
            embed_dim=8, num_blocks=1, vocab_size=50, sequence_length=12,
            data_dir=str(tmp_path / "data"), quiet=True):
        text_cli.main(["text_transformer"])
    _check_class_schema(_summary(out), 2, superclasses=False)


# ------------------------------------------------------------------------------------------
# Resume after SIGKILL
# ------------------------------------------------------------------------------------------


def _command(out):
    return [sys.executable, "-m", "tfstiffness.cli.class_stiffness", f"--output_dir={out}",
            "--epochs=6", "--synthetic_per_class=60", "--probe_per_class=5",
            "--eval_epochs=1,3,5", "--quiet"]


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _epochs_done(out):
    state = Path(out) / "stages" / "state.npz"
    if not state.exists():
        return -1
    with np.load(state) as data:
        return int(data["epochs_done"])


@pytest.mark.slow
def test_run_killed_mid_training_resumes_to_identical_results(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(_command(killed), env=_env(), cwd=REPO)
    deadline = time.monotonic() + 300
    while _epochs_done(killed) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = _epochs_done(killed)
    assert 1 <= done_at_kill < 6
    assert not (killed / "results.npz").exists()

    subprocess.run(_command(killed), env=_env(), cwd=REPO, check=True)
    subprocess.run(_command(whole), env=_env(), cwd=REPO, check=True)
    resumed_summary = _summary(killed)
    assert resumed_summary["run"]["resumed_after_epoch"] >= done_at_kill
    a, b = np.load(killed / "results.npz"), np.load(whole / "results.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert resumed_summary["results"] == _summary(whole)["results"]
