"""Tests of tfstiffness.experiment: config guard, atomic files, stage checkpoints, progress."""

import json
import os

import numpy as np
import pytest

from tfstiffness import experiment


def _temporaries(root):
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_config_written_once_and_same_config_reused(tmp_path):
    out = experiment.OutputDir(tmp_path / "run", {"epochs": 3, "radii": (0.05, 0.1)},
                               verbose=False)
    assert json.loads(out.config_path.read_text()) == {"epochs": 3, "radii": [0.05, 0.1]}
    out.save_stage("init", {"a": np.arange(3)})
    # A list equal to the saved tuple is the same configuration: the stage is still there.
    again = experiment.OutputDir(tmp_path / "run", {"epochs": 3, "radii": [0.05, 0.1]},
                                 verbose=False)
    assert again.done("init")


def test_different_config_is_refused_naming_the_flags(tmp_path):
    experiment.OutputDir(tmp_path, {"epochs": 3, "lr": 0.1, "seed": 0}, verbose=False)
    with pytest.raises(ValueError) as info:
        experiment.OutputDir(tmp_path, {"epochs": 5, "lr": 0.1, "method": "ghost"})
    message = str(info.value)
    assert "epochs: saved 3, now 5" in message
    assert "method: saved <absent>, now ghost" in message
    assert "seed: saved 0, now <absent>" in message
    assert "lr" not in message.split("(")[1]  # Unchanged flags are not listed.
    assert isinstance(info.value, experiment.ConfigMismatchError)
    # The saved configuration is untouched.
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    experiment.write_json(tmp_path / "a" / "s.json", {"x": np.float32(0.5), "n": float("nan")})
    experiment.write_npz(tmp_path / "r.npz", v=np.arange(4), names=np.array(["a", "bb"]))
    from tfstiffness import plots

    experiment.save_figure(plots.class_matrix(np.eye(2)), tmp_path / "f" / "c.png")
    assert json.loads((tmp_path / "a" / "s.json").read_text()) == {"x": 0.5, "n": None}
    with np.load(tmp_path / "r.npz") as data:
        assert data["names"].tolist() == ["a", "bb"]
    assert (tmp_path / "f" / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert _temporaries(tmp_path) == []


def test_failed_write_keeps_old_content_and_no_temporary(tmp_path):
    target = tmp_path / "s.json"
    experiment.write_json(target, {"old": 1})
    with pytest.raises(TypeError):
        experiment.write_json(target, {"bad": object()})
    with pytest.raises(RuntimeError), experiment.atomic_write(target, "w") as f:
        f.write('{"half": ')
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"old": 1}
    assert _temporaries(tmp_path) == []


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    out = experiment.OutputDir(tmp_path, {"a": 1}, verbose=False)
    out.stages_dir.mkdir()
    stale = out.stages_dir / ".trained.npz.abc123.tmp"
    stale.write_bytes(b"half")
    experiment.OutputDir(tmp_path, {"a": 1}, verbose=False)
    assert not stale.exists()


def test_stages_round_trip(tmp_path):
    out = experiment.OutputDir(tmp_path, {}, verbose=False)
    assert not out.done("init")
    out.save_stage("init", {"w": np.eye(2), "loss": np.float64(0.25), "name": np.array("x")})
    assert out.done("init") and not out.done("trained")
    loaded = out.load_stage("init")
    np.testing.assert_array_equal(loaded["w"], np.eye(2))
    assert float(loaded["loss"]) == 0.25 and str(loaded["name"]) == "x"
    with pytest.raises(ValueError, match="bad stage name"):
        out.done("../escape")


def test_summary_has_config_versions_results(tmp_path):
    out = experiment.OutputDir(tmp_path, {"epochs": 2}, verbose=False)
    out.write_summary({"auc": np.float64(0.75)}, run={"elapsed_s": 1.0})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"] == {"epochs": 2}
    assert set(summary["versions"]) == {"python", "tensorflow", "keras", "tfstiffness", "numpy"}
    assert summary["results"] == {"auc": 0.75}
    assert summary["run"] == {"elapsed_s": 1.0}


def test_progress_estimates_remaining_time_from_this_process(tmp_path, monkeypatch):
    clock = iter([0.0, 10.0, 20.0])  # Construction, first call, second call.
    monkeypatch.setattr(experiment.time, "monotonic", lambda: next(clock))
    lines = []
    out = experiment.OutputDir(tmp_path, {}, name="demo", printer=lines.append)
    # Resumed at 2 of 4 done: no rate yet, so no estimate.
    assert out.progress("stage a", 2, 4) == "[demo 10.0s] stage a (2/4)"
    # 10 s for the last unit, one unit left: about 10 s.
    assert out.progress("stage b", 3, 4) == "[demo 20.0s] stage b (3/4, ~10.0s left)"
    assert lines == ["[demo 10.0s] stage a (2/4)", "[demo 20.0s] stage b (3/4, ~10.0s left)"]


def test_tensorboard_writer_writes_under_output_dir(tmp_path):
    out = experiment.OutputDir(tmp_path, {}, verbose=False)
    from tfstiffness import summary

    summary.write_scalars(out.tensorboard, {"x": 1.0}, step=0)
    out.close()
    assert any(name.startswith("events.out") for name in os.listdir(tmp_path / "tensorboard"))
