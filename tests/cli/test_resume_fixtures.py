"""A run directory written by the code from before the house move resumes with today's code.

The fixtures (tests/fixtures/runs, made by its make_fixtures.py from commit 37eeb17) are runs
killed after their first stage. Resumed here with the same flags: the directory is accepted
(same config.json), the run finishes, config.json is unchanged, and what was done before is
reused, not recomputed."""

import json
import shutil

import numpy as np
import pytest

from tests.support import REPO_ROOT
from tfstiffness.cli import class_stiffness as class_cli
from tfstiffness.cli import neighbourhoods as neighbourhoods_cli

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "runs"


def _copy(name, tmp_path):
    path = tmp_path / name
    shutil.copytree(FIXTURES / name, path)
    return path


def _run(binary, *args):
    with pytest.raises(SystemExit) as info:
        binary.run([binary.__name__.rsplit(".", 1)[-1], *args])
    return info.value.code or 0


def _flags(module):
    """The flags the fixture was made with (make_fixtures.RUNS)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    made = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(made)
    return made.RUNS[module][1]


def test_class_stiffness_run_from_before_the_move_resumes(tmp_path, capsys):
    path = _copy("class_stiffness_interrupted", tmp_path)
    config = (path / "config.json").read_text()
    with np.load(path / "stages" / "state.npz") as saved:
        before = {key: saved[key] for key in saved.files}
    assert int(before["epochs_done"]) == 1
    assert _run(class_cli, f"--output_dir={path}", *_flags("class_stiffness_interrupted")) == 0
    assert "resuming after epoch 1 of 2" in capsys.readouterr().out
    assert (path / "config.json").read_text() == config
    summary = json.loads((path / "summary.json").read_text())
    assert summary["config"] == json.loads(config)
    assert summary["run"]["resumed_after_epoch"] == 1
    assert summary["run"]["train_seconds"][0] == pytest.approx(before["train_seconds"][0])
    epochs = summary["results"]["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    for e in (0, 1):  # Measured before the interruption: read back, not measured again.
        assert epochs[e]["train_loss"] == pytest.approx(float(before[f"m{e}/train_loss"]))
        assert epochs[e]["stiffness"]["train_train"]["cosine"]["within"] == pytest.approx(
            float(before[f"m{e}/train_train/cosine/within"]))
    with np.load(path / "results.npz") as results:
        np.testing.assert_array_equal(results["epoch_loss"][:1], before["epoch_loss"])


def test_neighbourhoods_run_from_before_the_move_resumes(tmp_path):
    path = _copy("neighbourhoods_interrupted", tmp_path)
    config = (path / "config.json").read_text()
    init = (path / "stages" / "init.npz").read_bytes()
    assert _run(neighbourhoods_cli, f"--output_dir={path}",
                *_flags("neighbourhoods_interrupted")) == 0
    assert (path / "config.json").read_text() == config
    assert (path / "stages" / "init.npz").read_bytes() == init  # Not measured again.
    summary = json.loads((path / "summary.json").read_text())
    assert summary["config"] == json.loads(config)
    assert summary["run"]["skipped_stages"] == ["init"]
    with np.load(path / "stages" / "init.npz") as saved:
        assert summary["results"]["stages"]["init"]["accuracy"] == pytest.approx(
            float(saved["accuracy"]))
    assert (path / "stages" / "trained.npz").exists()


def test_a_fixture_stage_without_its_config_json_is_refused(tmp_path, capsys):
    path = _copy("class_stiffness_interrupted", tmp_path)
    (path / "config.json").unlink()  # its stage records no settings: nothing to match it to
    assert _run(class_cli, f"--output_dir={path}", *_flags("class_stiffness_interrupted")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (f"stage checkpoint {path / 'stages' / 'state.npz'} records no settings (written by "
            "an older version) and the directory had no config.json to match it to") in err
    assert not (path / "summary.json").exists()


def test_stages_of_other_settings_are_refused_naming_both(tmp_path, capsys):
    flags = [f for f in _flags("class_stiffness_interrupted") if not f.startswith("--epochs")]
    flags.append("--epochs=1")
    run, seed1 = tmp_path / "run", tmp_path / "seed1"
    assert _run(class_cli, f"--output_dir={run}", *flags) == 0
    assert _run(class_cli, f"--output_dir={seed1}", *flags, "--seed=1") == 0
    lr = json.loads((run / "config.json").read_text())["learning_rate"]
    state = run / "stages" / "state.npz"
    (run / "config.json").unlink()
    capsys.readouterr()
    assert _run(class_cli, f"--output_dir={run}", *flags, f"--learning_rate={lr * 10:g}") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (f"stage checkpoint {state} was made by other settings or inputs than this run's "
            f"(learning_rate: stage {lr}, now {lr * 10:g})") in err
    # A state.npz of the --seed 1 run copied into this (matching) directory: refused too.
    shutil.copy(seed1 / "stages" / "state.npz", state)
    assert _run(class_cli, f"--output_dir={run}", *flags, f"--learning_rate={lr * 10:g}") == 1
    assert "seed: stage 1, now 0" in capsys.readouterr().err
    # The same flags as the seed-1 run's own stage: resumed, to the seed-1 numbers.
    shutil.rmtree(run)
    shutil.copytree(seed1, run)
    assert _run(class_cli, f"--output_dir={run}", *flags, "--seed=1") == 0
    a = json.loads((run / "summary.json").read_text())["results"]
    b = json.loads((seed1 / "summary.json").read_text())["results"]
    assert a == b
