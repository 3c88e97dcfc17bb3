"""Tests of tfstiffness.outputs.run_directory: config guard, lock, path checks, atomic files, stage
checkpoints, per-step TensorBoard files, progress."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfstiffness.outputs import run_directory


def _temporaries(root):
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_config_written_once_and_same_config_reused(tmp_path):
    out = run_directory.OutputDir(tmp_path / "run", {"epochs": 3, "radii": (0.05, 0.1)},
                               verbose=False)
    assert json.loads(out.config_path.read_text()) == {"epochs": 3, "radii": [0.05, 0.1]}
    out.save_stage("init", {"a": np.arange(3)})
    # A list equal to the saved tuple is the same configuration: the stage is still there.
    again = run_directory.OutputDir(tmp_path / "run", {"epochs": 3, "radii": [0.05, 0.1]},
                                 verbose=False)
    assert again.done("init")


def test_different_config_is_refused_naming_the_flags(tmp_path):
    run_directory.OutputDir(tmp_path, {"epochs": 3, "lr": 0.1, "seed": 0}, verbose=False)
    with pytest.raises(ValueError) as info:
        run_directory.OutputDir(tmp_path, {"epochs": 5, "lr": 0.1, "method": "ghost"})
    message = str(info.value)
    assert "epochs: saved 3, now 5" in message
    assert "method: saved <absent>, now ghost" in message
    assert "seed: saved 0, now <absent>" in message
    assert "lr" not in message.split("(")[1]  # Unchanged flags are not listed.
    assert isinstance(info.value, run_directory.ConfigMismatchError)
    # The saved configuration is untouched.
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    run_directory.write_json(tmp_path / "a" / "s.json", {"x": np.float32(0.5), "n": float("nan")})
    run_directory.write_npz(tmp_path / "r.npz", v=np.arange(4), names=np.array(["a", "bb"]))
    from tfstiffness.outputs import plots

    run_directory.save_figure(plots.class_matrix(np.eye(2)), tmp_path / "f" / "c.png")
    assert json.loads((tmp_path / "a" / "s.json").read_text()) == {"x": 0.5, "n": None}
    with np.load(tmp_path / "r.npz") as data:
        assert data["names"].tolist() == ["a", "bb"]
    assert (tmp_path / "f" / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert _temporaries(tmp_path) == []


def test_failed_write_keeps_old_content_and_no_temporary(tmp_path):
    target = tmp_path / "s.json"
    run_directory.write_json(target, {"old": 1})
    with pytest.raises(TypeError):
        run_directory.write_json(target, {"bad": object()})
    with pytest.raises(RuntimeError), run_directory.atomic_write(target, "w") as f:
        f.write('{"half": ')
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"old": 1}
    assert _temporaries(tmp_path) == []


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    out = run_directory.OutputDir(tmp_path, {"a": 1}, verbose=False)
    out.stages_dir.mkdir()
    stale = out.stages_dir / ".trained.npz.abc123.tmp"
    stale.write_bytes(b"half")
    staging = tmp_path / ".events.x1y2.tmp"  # A half-written TensorBoard file's directory.
    staging.mkdir()
    (staging / "events.out.tfevents.1.host").write_bytes(b"half")
    out.close()
    run_directory.OutputDir(tmp_path, {"a": 1}, verbose=False)
    assert not stale.exists() and not staging.exists()


_HOLD_LOCK = textwrap.dedent("""
    import fcntl, os, sys, time
    f = open(sys.argv[1], "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.truncate(0); f.write(f"pid {os.getpid()} on test"); f.flush()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_directory_used_by_a_live_run_is_refused_naming_its_pid(tmp_path):
    run_directory.OutputDir(tmp_path / "run", {"a": 1}, verbose=False).close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK,
                               str(tmp_path / "run" / ".lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for attempt in (lambda: run_directory.check_output_dir(tmp_path / "run"),
                        lambda: run_directory.OutputDir(tmp_path / "run", {"a": 1})):
            with pytest.raises(run_directory.OutputDirBusyError) as info:
                attempt()
            assert f"in use by another run (pid {holder.pid} on test)" in str(info.value)
        # Nothing was touched: the refused run did not even look at the configuration.
        assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"a": 1}
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone (as after SIGKILL): its lock is stale and is taken over.
    lines = []
    out = run_directory.OutputDir(tmp_path / "run", {"a": 1}, printer=lines.append)
    assert f"took over the lock left by a run that ended without releasing it (pid " \
           f"{holder.pid} on test)" in lines[0]
    assert f"pid {os.getpid()}" in (tmp_path / "run" / ".lock").read_text()
    out.close()
    assert (tmp_path / "run" / ".lock").read_text() == ""  # Released cleanly: not stale.


def test_one_process_may_reopen_its_own_directory(tmp_path):
    first = run_directory.OutputDir(tmp_path, {"a": 1}, verbose=False)
    second = run_directory.OutputDir(tmp_path, {"a": 1}, verbose=False)
    second.close()
    assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()  # Still held by `first`.
    first.close()
    assert (tmp_path / ".lock").read_text() == ""


def test_unusable_paths_are_refused_before_anything_is_written(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("")
    for path in (a_file, a_file / "sub" / "run"):
        with pytest.raises(run_directory.OutputDirError, match="is a file, not a directory"):
            run_directory.OutputDir(path, {"a": 1})
    if os.geteuid() != 0:  # root writes anywhere: only a read-only mount would stop it.
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(run_directory.OutputDirError, match="is not writable"):
                run_directory.check_output_dir(ro / "run")
        finally:
            ro.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_step_events_write_one_file_per_step_and_replace_it(tmp_path):
    import tensorflow as tf

    from tfstiffness.outputs import tensorboard as summary

    out = run_directory.OutputDir(tmp_path, {}, verbose=False)
    for step, value in ((0, 0.5), (1, 0.6), (1, 0.7)):  # Step 1 written twice (a redo).
        with out.step_events("stiffness", step) as writer:
            summary.write_scalars(writer, {"within": value}, step)
    files = sorted((tmp_path / "tensorboard" / "stiffness").iterdir())
    assert [f.name for f in files] == [summary.event_file_name(0), summary.event_file_name(1)]
    points = [(e.step, float(tf.make_ndarray(v.tensor))) for f in files
              for e in tf.compat.v1.train.summary_iterator(str(f)) for v in e.summary.value]
    assert points == [(0, 0.5), (1, pytest.approx(0.7))]
    # A failed step leaves nothing behind.
    with pytest.raises(RuntimeError), out.step_events("stiffness", 2) as writer:
        summary.write_scalars(writer, {"within": 0.8}, 2)
        raise RuntimeError("killed")
    assert len(list((tmp_path / "tensorboard" / "stiffness").iterdir())) == 2
    assert _temporaries(tmp_path) == []


def test_stages_round_trip(tmp_path):
    out = run_directory.OutputDir(tmp_path, {}, verbose=False)
    assert not out.done("init")
    out.save_stage("init", {"w": np.eye(2), "loss": np.float64(0.25), "name": np.array("x")})
    assert out.done("init") and not out.done("trained")
    loaded = out.load_stage("init")
    np.testing.assert_array_equal(loaded["w"], np.eye(2))
    assert float(loaded["loss"]) == 0.25 and str(loaded["name"]) == "x"
    with pytest.raises(ValueError, match="bad stage name"):
        out.done("../escape")


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[:40]),  # A copy cut short.
    lambda p: p.write_bytes(b"garbage"),
    lambda p: np.savez(p, w=np.array([{"a": 1}], dtype=object)),  # Would need pickle.
])
def test_a_damaged_stage_checkpoint_is_refused_naming_it(tmp_path, damage):
    out = run_directory.OutputDir(tmp_path, {}, verbose=False)
    out.save_stage("init", {"w": np.eye(2)})
    path = tmp_path / "stages" / "init.npz"
    damage(path)
    with pytest.raises(run_directory.CorruptFileError,
                       match=f"stage checkpoint {path} cannot be read .*Delete it to redo"):
        out.load_stage("init")


@pytest.mark.parametrize("content", ["{\"epochs\": 2", "[1, 2]", "\udcff"])
def test_a_damaged_config_is_refused_naming_it(tmp_path, content):
    (tmp_path / "config.json").write_text(content, errors="surrogateescape")
    with pytest.raises(run_directory.CorruptFileError,
                       match=f"config {tmp_path / 'config.json'} cannot be read .*Delete the "
                             f"output directory {tmp_path} to start over"):
        run_directory.OutputDir(tmp_path, {"epochs": 2}, verbose=False)
    assert not (tmp_path / "stages").exists()


def test_summary_has_config_versions_results(tmp_path):
    out = run_directory.OutputDir(tmp_path, {"epochs": 2}, verbose=False)
    out.write_summary({"auc": np.float64(0.75)}, run={"elapsed_s": 1.0})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"] == {"epochs": 2}
    assert set(summary["versions"]) == {"python", "tensorflow", "keras", "tfstiffness", "numpy"}
    assert summary["results"] == {"auc": 0.75}
    assert summary["run"] == {"elapsed_s": 1.0}


def test_progress_estimates_remaining_time_from_this_process(tmp_path, monkeypatch):
    clock = iter([0.0, 10.0, 20.0])  # Construction, first call, second call.
    monkeypatch.setattr(run_directory.time, "monotonic", lambda: next(clock))
    lines = []
    out = run_directory.OutputDir(tmp_path, {}, name="demo", printer=lines.append)
    # Resumed at 2 of 4 done: no rate yet, so no estimate.
    assert out.progress("stage a", 2, 4) == "[demo 10.0s] stage a (2/4)"
    # 10 s for the last unit, one unit left: about 10 s.
    assert out.progress("stage b", 3, 4) == "[demo 20.0s] stage b (3/4, ~10.0s left)"
    assert lines == ["[demo 10.0s] stage a (2/4)", "[demo 20.0s] stage b (3/4, ~10.0s left)"]


def test_progress_with_a_given_estimate(tmp_path):
    out = run_directory.OutputDir(tmp_path, {}, name="demo", verbose=False)
    assert out.progress("epoch 2/9", remaining=75.0).endswith("epoch 2/9 (~1m15s left)")


def test_a_stage_of_other_settings_or_inputs_is_refused_naming_both(tmp_path):
    from tfstiffness.errors import ConfigMismatchError

    run = tmp_path / "run"
    with run_directory.OutputDir(run, {"lr": 0.001, "seed": 0}, verbose=False,
                                 inputs={"data": "d0"}) as out:
        out.save_stage("state", {"w": np.arange(3)})
    # config.json removed, then the same stage opened under other settings: refused.
    (run / "config.json").unlink()
    out = run_directory.OutputDir(run, {"lr": 0.01, "seed": 0}, verbose=False,
                                  inputs={"data": "d0"})
    with pytest.raises(ConfigMismatchError, match=r"stage checkpoint .*state.npz was made "
                       r"by other settings or inputs than this run's \(lr: stage 0.001, "
                       r"now 0.01\); resuming it would mix two runs' numbers"):
        out.done("state")
    out.close()
    # Same settings, other data: refused naming the input's two digests.
    other = tmp_path / "other"
    with run_directory.OutputDir(other, {"lr": 0.001, "seed": 0}, verbose=False,
                                 inputs={"data": "d1"}) as out:
        shutil.copytree(run / "stages", other / "stages")
        with pytest.raises(ConfigMismatchError, match=r"\(data: stage digest d0, now d1\)"):
            out.done("state")
    # The run that made it resumes it, and the record is not among the arrays.
    (run / "config.json").unlink()
    with run_directory.OutputDir(run, {"lr": 0.001, "seed": 0}, verbose=False,
                                 inputs={"data": "d0"}) as out:
        assert out.done("state")
        assert sorted(out.load_stage("state")) == ["w"]


def test_a_stage_from_before_records_needs_a_matching_config_json(tmp_path):
    from tfstiffness.errors import ConfigMismatchError

    run = tmp_path / "run"
    with run_directory.OutputDir(run, {"lr": 0.001}, verbose=False):
        pass
    run_directory.write_npz(run / "stages" / "state.npz", w=np.arange(3))  # no record
    with run_directory.OutputDir(run, {"lr": 0.001}, verbose=False) as out:
        assert out.done("state")  # config.json matched: trusted
    (run / "config.json").unlink()
    out = run_directory.OutputDir(run, {"lr": 0.01}, verbose=False)
    with pytest.raises(ConfigMismatchError, match=r"stage checkpoint .*state.npz records "
                       r"no settings \(written by an older version\) and the directory had "
                       r"no config.json to match it to. Delete "):
        out.done("state")
    out.close()


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_symbolic_link_is_named(tmp_path, kind):
    link = tmp_path / "link"
    if kind == "dangling":
        os.symlink(tmp_path / "nowhere", link)
    else:
        os.symlink(tmp_path / "other", link)
        os.symlink(link, tmp_path / "other")
    for path in (link, link / "run"):
        with pytest.raises(run_directory.OutputDirError, match=(
                f"output directory {re.escape(str(path))}: {re.escape(str(link))} is a "
                f"symbolic link to {re.escape(os.readlink(link))}, which does not exist or "
                "loops. Point the link")):
            run_directory.OutputDir(path, {"a": 1}, verbose=False)


def test_nested_and_enclosing_runs_are_refused_and_clean_up_stays_home(tmp_path):
    parent, child = tmp_path / "par", tmp_path / "par" / "child"
    run_directory.OutputDir(child, {"a": 1}, verbose=False).close()
    # The child's in-progress temporary (a live run's file) and the parent's own stale one.
    child_tmp = child / "tensorboard" / ".events.1.tmp"
    child_tmp.parent.mkdir(parents=True)
    child_tmp.write_text("being written")
    own_tmp = parent / "stages" / ".state.npz.2.tmp"
    own_tmp.parent.mkdir(parents=True)
    own_tmp.write_text("left by a kill")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(child / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_directory.OutputDirBusyError) as info:
            run_directory.OutputDir(parent, {"b": 2}, verbose=False)
        assert str(info.value) == (
            f"output directory {parent} holds {child}, the output directory of another live "
            f"run (pid {holder.pid} on test). Use another directory, or wait for it to finish.")
        assert child_tmp.exists() and not (parent / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # The child ended: the parent may be used, and its clean-up leaves the child's files alone.
    out = run_directory.OutputDir(parent, {"b": 2}, verbose=False)
    assert not own_tmp.exists() and child_tmp.exists()
    out.close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(parent / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        inner = parent / "seed=0"
        with pytest.raises(run_directory.OutputDirBusyError) as info:
            run_directory.check_output_dir(inner)
        assert str(info.value) == (
            f"output directory {inner} is inside {parent}, the output directory of another "
            f"live run (pid {holder.pid} on test). Use a directory outside it, or wait for it "
            "to finish.")
        assert not inner.exists()
    finally:
        holder.kill()
        holder.wait()
