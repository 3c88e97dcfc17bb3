"""tfstiffness-summary: a user's saved model (with a custom layer) measured from the command
line equals `stiffness_summary` in process; refusals before anything is written; resume; on
two local workers (slow); as a subprocess (slow)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfstiffness as tfs
from tests.support import REPO_ROOT
from tests.support.custom_layers import Scale
from tfstiffness.cli import summary as summary_cli
from tfstiffness.studies import saved_model as study

ROOT = REPO_ROOT
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
FINE_TO_COARSE = np.array([0, 0, 1, 1])


def _save_model_and_data(path, n, data_seed):
    """A compiled model with a custom layer saved as path/model.keras, and n examples of its
    data in path/data.npz."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), Scale(),
                              keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(4)])
    model.compile(loss=LOSS)
    model.save(path / "model.keras")
    rng = np.random.default_rng(data_seed)
    np.savez(path / "data.npz", x=rng.normal(size=(n, 6)).astype("float32"),
             y=rng.integers(0, 4, n), fine_to_coarse=FINE_TO_COARSE)
    return path


@pytest.fixture
def saved(tmp_path):
    """A compiled model with a custom layer, saved as .keras, and an .npz of its data."""
    return _save_model_and_data(tmp_path, 50, 0)


def _args(saved, out, *extra):
    return ["--model", str(saved / "model.keras"), "--inputs", str(saved / "data.npz"),
            "--custom_objects", "tests.support.custom_layers:Scale", "--output_dir", str(out),
            "--block_size", "8", "--radius", "2", "--quiet", *extra]


def _run(*args):
    """The binary in this process, as the command line runs it; its exit status."""
    with pytest.raises(SystemExit) as info:
        summary_cli.run(["summary", *args])
    return info.value.code or 0


def _expected(saved):
    with np.load(saved / "data.npz") as data:
        x, y = data["x"], data["y"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the unbuilt optimizer; zero gradients
        model = keras.saving.load_model(saved / "model.keras", custom_objects={"Scale": Scale})
        return tfs.stiffness_summary(model, x, y, block_size=8, radius=2.0,
                                     fine_to_coarse=FINE_TO_COARSE), len(y)


def _check_equal(out, expected, sign_exact=True):
    """results.npz and summary.json against a `StiffnessSummary` (sign exactly, cosine 1e-6)."""
    summary = json.loads((Path(out) / "summary.json").read_text())["results"]
    with np.load(Path(out) / "results.npz") as r:
        for kind in ("sign", "cosine"):
            check = (np.testing.assert_array_equal if kind == "sign" and sign_exact else
                     lambda a, b, **kw: np.testing.assert_allclose(a, b, atol=1e-6, **kw))
            check(r[f"class_matrix_{kind}"], expected.class_matrix[kind], err_msg=kind)
            check(r[f"curve_means_{kind}"], expected.distance_curve[kind].means, err_msg=kind)
            check(r[f"neighbourhood_{kind}"], expected.neighbourhood[kind], err_msg=kind)
            stats = summary["stiffness"][kind]
            for name in ("within", "between"):
                assert stats[name] == pytest.approx(getattr(expected, name)[kind], abs=1e-6)
            assert stats["superclass_contrast"] == pytest.approx(
                expected.superclass_contrast[kind], abs=1e-6)
            for method in ("crossing", "linear_fit"):
                xi = tfs.critical_length(expected.distance_curve[kind], method=method)
                assert stats["xi"][method]["status"] == xi.status
                assert stats["xi"][method]["xi"] == pytest.approx(xi.xi, abs=1e-6)
        np.testing.assert_array_equal(r["neighbour_counts"], expected.neighbour_counts)
        np.testing.assert_allclose(r["sq_norms"], expected.sq_norms, rtol=1e-5)
    assert summary["alignment"]["m_coherence"] == pytest.approx(
        expected.alignment.m_coherence(), rel=1e-6)
    assert summary["blocks"]["total"] == expected.blocks_total
    return summary


def test_saved_model_with_a_custom_layer_equals_stiffness_summary_in_process(saved):
    out = saved / "out"
    assert _run(*_args(saved, out)) == 0
    expected, n = _expected(saved)
    summary = _check_equal(out, expected)
    assert summary["examples"] == n and summary["num_classes"] == 4
    assert summary["blocks"] == {"total": 28, "resumed": 0, "by_worker": [28]}
    for name in ("class_matrix_cosine", "class_matrix_sign", "stiffness_vs_distance"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["figures", "summary"]
    tags = {v.tag for path in (out / "tensorboard" / "summary").iterdir()
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for v in event.summary.value}
    assert {"summary/cosine/within", "summary/cosine/xi_crossing",
            "summary/cosine/xi_linear_fit", "summary/alignment/m_coherence"} <= tags
    config = json.loads((out / "config.json").read_text())
    assert config["custom_objects"] == ["Scale"] and config["loss"] is None

    # The same command again: everything from the checkpoint, the same numbers.
    assert _run(*_args(saved, out)) == 0
    again = _check_equal(out, expected)
    assert again["blocks"] == {"total": 28, "resumed": 28, "by_worker": [0]}


def test_mirrored_strategy_gives_the_same_numbers(saved):
    out = saved / "out"
    assert _run(*_args(saved, out, "--strategy", "mirrored")) == 0
    expected, _ = _expected(saved)
    summary = _check_equal(out, expected)
    assert summary["strategy"]["name"] == "mirrored" and summary["blocks"]["by_worker"] == [28]


def test_other_flags_on_the_directory_and_a_loss_given_by_config(saved, capsys):
    out = saved / "out"
    assert _run(*_args(saved, out)) == 0
    assert _run(*_args(saved, out, "--bins", "10")) == 1
    assert "holds results of a different configuration (bins: saved 20, now 10)" in (
        capsys.readouterr().err)
    loss = '{"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": true}}'
    assert _run(*_args(saved, saved / "out_loss", "--loss", loss)) == 0
    with np.load(out / "results.npz") as a, np.load(saved / "out_loss" / "results.npz") as b:
        np.testing.assert_array_equal(a["class_matrix_sign"], b["class_matrix_sign"])


def test_a_radius_without_neighbours_is_reported_with_one_that_has_them(saved, capsys):
    with np.load(saved / "data.npz") as data:
        x = data["x"]
    pairwise = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(pairwise, np.inf)
    nearest = pairwise.min(1)  # brute force
    args = _args(saved, saved / "out", "--block_size", "16")
    args[args.index("--radius") + 1] = "0.01"
    args.remove("--quiet")
    assert _run(*args) == 0
    out = capsys.readouterr().out
    summary = json.loads((saved / "out" / "summary.json").read_text())["results"]
    neighbours = summary["neighbourhood"]
    assert neighbours["no_neighbour"] == int((nearest > 0.01).sum()) == len(x)
    suggested = neighbours["suggested_radius"]
    assert (nearest <= suggested).mean() >= 0.9 > (nearest <= suggested * 0.99).mean()
    assert neighbours["nearest_distance_median"] == pytest.approx(np.median(nearest), rel=1e-5)
    assert (f"{len(x)} of {len(x)} points have no neighbour within radius 0.01; their "
            f"neighbourhood stiffness is NaN. Distances to the nearest other point: median "
            f"{np.median(nearest):.3g}; radius {suggested:g} gives 90% of the points a "
            "neighbour") in out
    args[args.index("--radius") + 1] = str(suggested)
    args[args.index("--output_dir") + 1] = str(saved / "out2")
    assert _run(*args) == 0
    summary = json.loads((saved / "out2" / "summary.json").read_text())["results"]
    assert summary["neighbourhood"]["no_neighbour"] == int((nearest > suggested).sum())
    assert summary["neighbourhood"]["no_neighbour"] <= 0.1 * len(x)


def test_a_data_set_by_name_gives_its_super_class_contrast(tmp_path):
    keras.utils.set_random_seed(0)
    train = tfs.data.load("hierarchical_images", "train", max_examples=40)
    model = keras.Sequential([keras.Input(train.x.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(100)])
    model.compile(loss=LOSS)
    model.save(tmp_path / "images.keras")
    out = tmp_path / "out"
    assert _run("--model", str(tmp_path / "images.keras"), "--dataset", "hierarchical_images",
                "--max_examples", "40", "--output_dir", str(out), "--quiet") == 0
    results = json.loads((out / "summary.json").read_text())["results"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = tfs.stiffness_summary(keras.saving.load_model(tmp_path / "images.keras"),
                                         train.x, train.y, num_classes=100,
                                         fine_to_coarse=train.fine_to_coarse)
    assert results["num_classes"] == 100
    assert results["stiffness"]["cosine"]["superclass_contrast"] == pytest.approx(
        expected.superclass_contrast["cosine"], abs=1e-6)


@pytest.mark.parametrize("case, status, message", [
    ("no model flag", 2, "Flag --model must have a value other than None"),
    ("missing model", 1, "model: .*missing.keras is not a file"),
    ("both data", 1, "dataset, inputs: give exactly one"),
    ("no custom objects", 1, "model: cannot load .* --custom_objects"),
    ("bad custom object", 1, "custom_objects: module 'tests.support.custom_layers' has no 'Nope'"),
    ("uncompiled", 1, "loss: the model was saved without a compiled loss; give --loss"),
    ("bad loss", 1, "loss: cannot make a loss of 'no_such_loss'"),
    ("radius on two sets", 1, "radius: neighbourhoods need one set"),
    ("bad radius", 2, "--radius must be a finite number > 0"),
    ("wrong labels", 1, "y: expected integer class labels"),
    ("multi_worker without TF_CONFIG", 1, "strategy: 'multi_worker' needs TF_CONFIG"),
    ("tpu without a TPU", 1, "strategy: 'tpu' found no TPU to connect to"),
])
def test_refusals_come_before_anything_is_written(saved, capsys, monkeypatch, case, status,
                                                 message):
    out = saved / "never"
    args = _args(saved, out)
    model_at = args.index("--model") + 1
    if case == "no model flag":
        args = args[:model_at - 1] + args[model_at + 1:]
    elif case == "missing model":
        args[model_at] = str(saved / "missing.keras")
    elif case == "both data":
        args += ["--dataset", "mnist"]
    elif case == "no custom objects":
        args = [a for a in args if a not in ("--custom_objects", "tests.support.custom_layers:Scale")]
    elif case == "bad custom object":
        args[args.index("tests.support.custom_layers:Scale")] = "tests.support.custom_layers:Nope"
    elif case == "uncompiled":
        keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)]).save(saved / "raw.keras")
        args[model_at] = str(saved / "raw.keras")
    elif case == "bad loss":
        args += ["--loss", "no_such_loss"]
    elif case == "radius on two sets":
        with np.load(saved / "data.npz") as d:
            np.savez(saved / "two.npz", x=d["x"], y=d["y"], x2=d["x"][:5], y2=d["y"][:5])
        args[args.index("--inputs") + 1] = str(saved / "two.npz")
    elif case == "bad radius":
        args[args.index("--radius") + 1] = "-1"
    elif case == "wrong labels":
        with np.load(saved / "data.npz") as d:
            np.savez(saved / "names.npz", x=d["x"], y=np.array(["a"] * len(d["y"])))
        args[args.index("--inputs") + 1] = str(saved / "names.npz")
    elif case == "multi_worker without TF_CONFIG":
        monkeypatch.delenv("TF_CONFIG", raising=False)
        args += ["--strategy", "multi_worker"]
    elif case == "tpu without a TPU":
        monkeypatch.delenv("TPU_NAME", raising=False)
        args += ["--strategy", "tpu"]
    assert _run(*args) == status
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("case, message", [
    ("empty inputs", r"inputs: .*empty.npz holds no examples \('y' is empty\); give at least one"),
    ("short fine_to_coarse",
     r"inputs: fine_to_coarse has 2 entries, one per class, but the labels go up to 3; give 4"),
    ("loss taking no arguments",
     r"loss: os:getcwd cannot be called as loss\(y_true, y_pred\) \(too many positional"),
])
def test_refusals_name_the_real_problem(saved, capsys, case, message):
    out = saved / "never"
    args = _args(saved, out)
    with np.load(saved / "data.npz") as d:
        x, y = d["x"], d["y"]
    if case == "empty inputs":
        np.savez(saved / "empty.npz", x=x[:0], y=y[:0])
        args[args.index("--inputs") + 1] = str(saved / "empty.npz")
    elif case == "short fine_to_coarse":
        assert y.max() == 3
        np.savez(saved / "short.npz", x=x, y=y, fine_to_coarse=np.array([0, 1]))
        args[args.index("--inputs") + 1] = str(saved / "short.npz")
    else:
        args += ["--loss", "os:getcwd"]
    assert _run(*args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert "num_classes" not in err and not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign", "other shapes"])
def test_a_damaged_checkpoint_is_refused_in_one_line(saved, capsys, damage):
    out = saved / "out"
    args = _args(saved, out)
    assert _run(*args) == 0
    state = out / "stages" / "summary_state.npz"
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[:200])
    elif damage == "garbage":
        state.write_bytes(b"not an npz at all" * 10)
    elif damage == "foreign":
        np.savez(state, w=np.arange(3))
    else:
        arrays = dict(np.load(state))
        arrays["sq_norms"] = arrays["sq_norms"][:3]
        np.savez(state, **arrays)
    capsys.readouterr()
    assert _run(*args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert (f"checkpoint: {state} is not a readable stiffness_summary checkpoint (") in err
    assert err.endswith("it may be truncated or another file. Delete it (the summary then starts "
                        "over) or use another --output_dir.")
    state.unlink()  # as advised: the summary starts over, to the same numbers
    assert _run(*args) == 0
    expected, _ = _expected(saved)
    _check_equal(out, expected)


def test_a_full_disk_names_the_file_and_the_rerun_resumes(saved, capsys, monkeypatch):
    import errno

    from tfstiffness.outputs import atomic

    out = saved / "out"
    real_fsync, failed = atomic.os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "summary.json" in name and not failed:  # the last file: the checkpoint is saved
            failed.append(name)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    assert _run(*_args(saved, out)) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"summary: error: No space left on device: could not write "
                   f"{out / 'summary.json'}. Free some space, then run the same command "
                   "again: it resumes from the last checkpoint.")
    assert failed and not list(out.rglob(".*.tmp"))  # the temporary removed
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert _run(*_args(saved, out)) == 0
    expected, _ = _expected(saved)
    summary = _check_equal(out, expected)
    assert summary["blocks"]["resumed"] == summary["blocks"]["total"]  # nothing recomputed


def test_stiffness_summary_refuses_no_examples():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"y: no examples \(N = 0\); give at least one"):
        tfs.stiffness_summary(model, np.zeros((0, 6), "float32"), np.zeros(0, int),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def test_load_inputs_takes_named_inputs_and_checks_entries(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **{"x/tokens": np.zeros((3, 4), np.int32), "x/mask": np.ones((3, 4)),
                      "y": np.arange(3), "class_names": np.array(["a", "b", "c"])})
    data = study.load_inputs(path, max_examples=2)
    assert sorted(data.x) == ["mask", "tokens"] and data.x["tokens"].shape == (2, 4)
    assert data.class_names == ("a", "b", "c") and data.x2 is None
    np.savez(path, x=np.zeros((3, 2)), y=np.arange(3), x2=np.zeros((2, 2)))
    with pytest.raises(study.runner.StudyInputError, match="holds x2 without its partner"):
        study.load_inputs(path)
    np.savez(path, inputs=np.zeros((3, 2)), y=np.arange(3))
    with pytest.raises(study.runner.StudyInputError, match="must hold arrays 'x'"):
        study.load_inputs(path)


@pytest.mark.slow
def test_the_console_binary_in_a_subprocess_equals_stiffness_summary(saved):
    out = saved / "out"
    done = subprocess.run([sys.executable, "-m", "tfstiffness.cli.summary",
                           *_args(saved, out)[:-1]], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {out}: summary.json" in done.stdout
    assert "I0000" not in done.stderr and "cuda" not in done.stderr.lower()  # quiet TF
    expected, _ = _expected(saved)
    _check_equal(out, expected)


@pytest.mark.slow
def test_multi_worker_through_the_local_launcher_equals_one_process(saved):
    out = saved / "out"
    done = subprocess.run([sys.executable, "-m", "tfstiffness.cli.summary_local_cluster",
                           "--workers", "2", "--", *_args(saved, out)[:-1]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    expected, _ = _expected(saved)
    summary = _check_equal(out, expected)
    assert summary["blocks"]["by_worker"] == [14, 14]
    assert summary["strategy"] == {"name": "multi_worker", "workers": 2, "replicas": 2}
    assert "[worker 0] [summary" in log and f"wrote {out}" in log
    assert "[worker 1] [summary worker:1] done: Gram blocks computed by worker [14, 14]" in log
    assert not [line for line in log.splitlines() if line.startswith("[worker 1] [summary ")
                and "wrote" in line]


@pytest.mark.slow
def test_killed_chief_of_the_launched_cluster_then_the_same_command_resumes(tmp_path):
    _save_model_and_data(tmp_path, 200, 1)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tfstiffness.cli.summary_local_cluster", "--workers", "2",
               "--", *[a for a in _args(tmp_path, out, "--checkpoint_every", "0")
                       if a != "--quiet"]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    launcher = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
    chief = None
    state = out / "stages" / f"{study.CHECKPOINT}.npz"
    for line in launcher.stdout:  # the launcher names the chief's pid first
        match = re.search(r"worker 0 \(chief\): pid (\d+)", line)
        if match:
            chief = int(match.group(1))
            break
    threading.Thread(target=launcher.stdout.read, daemon=True).start()  # never a full pipe
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and launcher.poll() is None and _done(state) < 20:
        time.sleep(0.02)
    assert launcher.poll() is None, "the cluster finished before the chief could be killed"
    os.kill(chief, signal.SIGKILL)
    assert launcher.wait(timeout=120) == 128 + signal.SIGKILL
    done_at_kill = _done(state)
    assert 20 <= done_at_kill < 325 and not (out / "summary.json").exists()

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=300, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert "took over the lock left by a run" in again.stdout
    summary = json.loads((out / "summary.json").read_text())["results"]
    assert summary["blocks"]["resumed"] == done_at_kill
    assert sum(summary["blocks"]["by_worker"]) + done_at_kill == 325
    with np.load(tmp_path / "data.npz") as data, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loaded = keras.saving.load_model(tmp_path / "model.keras",
                                         custom_objects={"Scale": Scale})
        expected = tfs.stiffness_summary(loaded, data["x"], data["y"], block_size=8,
                                         radius=2.0, fine_to_coarse=FINE_TO_COARSE)
    _check_equal(out, expected)


def _done(state: Path) -> int:
    try:
        with np.load(state) as saved:
            return len(saved["done"])
    except (OSError, ValueError, KeyError):
        return 0
