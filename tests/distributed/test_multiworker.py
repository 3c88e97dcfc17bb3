"""The summary on a tf.distribute cluster: workers' states reduce to the one-process numbers,
only the chief writes, a killed cluster restarted with the same command resumes; the local
launcher; strategies from names and TF_CONFIG."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfstiffness as tfs
from tests.support import REPO_ROOT
from tests.support.models_zoo import ZOO, data_for
from tests.support.multiworker_job import SETTINGS, summary_arrays
from tests.support.streaming_checkpoints import done_pairs
from tfstiffness import cli, streaming
from tfstiffness.cli import summary_local_cluster
from tfstiffness.distributed import cluster, local_cluster, summary_sync
from tfstiffness.engine.run import prepare_run

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ROOT = str(REPO_ROOT)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _assert_same_numbers(got: dict, expected: dict, cosine_atol: float = 1e-6) -> None:
    """Sign aggregates (sums of +-1) exactly, everything else to `cosine_atol`."""
    for key, value in expected.items():
        if key.startswith("blocks"):
            continue
        a, b = np.asarray(got[key], np.float64), np.asarray(value, np.float64)
        if "sign" in key or key.startswith(("curve_counts", "neighbour_counts")):
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            np.testing.assert_allclose(a, b, atol=cosine_atol, rtol=0, err_msg=key)


# ---------------------------------------------------------------------------------------------
# Reduction of workers' states, in one process
# ---------------------------------------------------------------------------------------------


def test_states_of_disjoint_blocks_reduce_to_the_one_pass_summary():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 23)
    expected = tfs.stiffness_summary(model, x, y, loss=LOSS, **SETTINGS)
    run = prepare_run(model, x, y, LOSS, None, None, "auto", SETTINGS["block_size"], None)
    edges = np.asarray(SETTINGS["distance_edges"])
    workers = [streaming._Accumulator(run, ("sign", "cosine"), y, y, 3, edges, "within",
                                      SETTINGS["radius"], "uniform", None) for _ in range(3)]
    for n, block in enumerate(run.blocks()):  # three "workers" take turns
        workers[n % 3].add(block)
    syncs = [summary_sync.WorkerSync(None, acc, chief=w == 0) for w, acc in enumerate(workers)]
    for w, sync in enumerate(syncs):
        sync.computed = 5 - (w > 0)
    rows = np.stack([sync.pack(next_after=0) for sync in syncs])
    workers[0].state = syncs[0].reduce(rows)
    assert len(workers[0].state["done"]) == expected.blocks_total == 15
    got = workers[0].result(SETTINGS["fine_to_coarse"], 15, 0, (5, 5, 5))
    _assert_same_numbers(summary_arrays(got), summary_arrays(expected), cosine_atol=1e-12)


def test_strategy_path_resumes_from_its_syncs(tmp_path, monkeypatch):
    # A one-device MirroredStrategy goes through the same worker loop as a cluster: blocks on
    # replicas, a sync (and a chief's save) after every step with checkpoint_every=0.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 23)
    expected = tfs.stiffness_summary(model, x, y, loss=LOSS, **SETTINGS)
    spread = tfs.stiffness_summary(model, x, y, loss=LOSS, strategy=strategy, **SETTINGS)
    assert spread.blocks_by_worker == (15,) and expected.blocks_by_worker == (15,)
    _assert_same_numbers(summary_arrays(spread), summary_arrays(expected))

    path = tmp_path / "state.npz"
    add = streaming._Accumulator.add
    calls = []

    def killed_at_the_eighth_block(self, block):
        calls.append(block.index)
        if len(calls) == 8:
            raise KeyboardInterrupt
        add(self, block)

    monkeypatch.setattr(streaming._Accumulator, "add", killed_at_the_eighth_block)
    with pytest.raises(KeyboardInterrupt):
        tfs.stiffness_summary(model, x, y, loss=LOSS, strategy=strategy, checkpoint=path,
                              checkpoint_every=0.0, **SETTINGS)
    monkeypatch.setattr(streaming._Accumulator, "add", add)
    with np.load(path) as saved:
        assert len(saved["done"]) == 7
    resumed = tfs.stiffness_summary(model, x, y, loss=LOSS, strategy=strategy, checkpoint=path,
                                    checkpoint_every=0.0, **SETTINGS)
    assert resumed.blocks_resumed == 7 and resumed.blocks_by_worker == (8,)
    _assert_same_numbers(summary_arrays(resumed), summary_arrays(expected))
    # The strategy's checkpoint is a plain one: the path without a strategy reads it.
    again = tfs.stiffness_summary(model, x, y, loss=LOSS, checkpoint=path, **SETTINGS)
    assert again.blocks_resumed == 15 and again.blocks_by_worker == (0,)


def test_workers_measuring_different_runs_are_named(monkeypatch):
    fingerprint = {"data": "aa", "loss": "bb", "setting pairs": "cc"}

    def two_workers(strategy, mine):  # worker 1 saw other data
        other = mine.copy()
        other[0] = 0.0  # not the chief
        other[1 + 16 * sorted(fingerprint).index("data")] += 1.0
        return np.stack([mine, other])

    monkeypatch.setattr(cluster, "gather_workers", two_workers)
    with pytest.raises(ValueError, match=r"strategy: the cluster's workers are not measuring "
                                         r"the same run: data differs on worker\(s\) \[1\] "
                                         r"from the chief \(0\)\. Every worker"):
        summary_sync.check_same_run(None, fingerprint)
    monkeypatch.setattr(cluster, "gather_workers", lambda s, v: np.stack([v, np.r_[0.0, v[1:]]]))
    summary_sync.check_same_run(None, fingerprint)  # the same run everywhere: fine


# ---------------------------------------------------------------------------------------------
# Strategies and TF_CONFIG
# ---------------------------------------------------------------------------------------------


def test_strategies_by_name_and_tf_config_errors(monkeypatch):
    assert cluster.make_strategy("none") is None
    assert (cluster.num_workers(None), cluster.is_chief(None)) == (1, True)
    mirrored = cluster.make_strategy("mirrored")
    assert cluster.num_workers(mirrored) == 1 and cluster.is_chief(mirrored)
    np.testing.assert_array_equal(cluster.gather_workers(mirrored, [1, 2]), [[1.0, 2.0]])
    with pytest.raises(ValueError, match="strategy: expected one of .*'tpu'.*, got 'gpus'"):
        cluster.make_strategy("gpus")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="strategy: 'multi_worker' needs TF_CONFIG"):
        cluster.make_strategy("multi_worker")
    for raw, message in [
            ("{not json", "TF_CONFIG: not valid JSON"),
            ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG: expected a 'cluster'"),
            ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG: expected a 'task'"),
            ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
             "TF_CONFIG: task worker:1 is not in the cluster")]:
        with pytest.raises(ValueError, match=message):
            cluster.tf_config({"TF_CONFIG": raw})
    assert cluster.tf_config({"TF_CONFIG": " "}) is None


@pytest.mark.parametrize("address", ["127.0.0.1:notaport", "127.0.0.1", "127.0.0.1:0",
                                     "127.0.0.1:70000", ":2222"])
def test_an_address_that_is_not_host_port_is_named(address):
    raw = json.dumps({"cluster": {"worker": ["127.0.0.1:2222", address]},
                      "task": {"type": "worker", "index": 0}})
    with pytest.raises(ValueError) as info:
        cluster.tf_config({"TF_CONFIG": raw})
    assert str(info.value) == (f"TF_CONFIG: worker:1's address {address!r} is not host:port "
                               "with a port number in 1-65535.")


def test_a_taken_port_is_refused_naming_the_worker_and_port(monkeypatch):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("TF_CONFIG", json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]},
            "task": {"type": "worker", "index": 0}}))
        with pytest.raises(ValueError) as info:
            cluster.make_strategy("multi_worker")
    assert str(info.value).startswith(
        f"strategy: worker worker:0 cannot listen on 127.0.0.1:{port}: port {port} is taken "
        "(Address already in use). Stop what holds it, or give this worker another port")


# ---------------------------------------------------------------------------------------------
# The local launcher (plain Python workers: no TensorFlow)
# ---------------------------------------------------------------------------------------------

_PRINT_TASK = ("import json, os; c = json.loads(os.environ['TF_CONFIG']); "
               "print(c['task']['index'], len(c['cluster']['worker']), end='\\r'); print('x')")


def test_launcher_gives_each_worker_its_tf_config_and_relays_prefixed_output():
    out = io.StringIO()
    assert local_cluster.run([sys.executable, "-c", _PRINT_TASK], 3, output=out) == 0
    text = out.getvalue()
    for index in range(3):
        assert f"[worker {index}] {index} 3\r[worker {index}] x\n" in text
    ports = re.findall(r"\[launcher\] worker \d.*pid \d+, 127\.0\.0\.1:(\d+)", text)
    assert len(set(ports)) == 3, text
    assert "(chief)" in text.splitlines()[0]


def test_launcher_stops_the_others_when_one_fails_and_returns_its_status(tmp_path):
    script = ("import json, os, sys, time; i = json.loads(os.environ['TF_CONFIG'])['task']"
              "['index']\nif i == 1: sys.exit(3)\ntime.sleep(120)")
    out, start = io.StringIO(), time.monotonic()
    assert local_cluster.run([sys.executable, "-c", script], 2, output=out,
                             grace_seconds=5) == 3
    assert time.monotonic() - start < 60  # Not stopped, worker 0 would sleep for 120 s.
    assert "[launcher] stopped: exit status 3" in out.getvalue()
    killed = "import os, signal, json; os.kill(os.getpid(), signal.SIGKILL)"
    assert local_cluster.run([sys.executable, "-c", killed], 1, output=io.StringIO()) == 137


def _interrupt_once_ready(ready, count, seconds=240):
    """SIGINT to this process once `count` workers have made their file in `ready`."""
    deadline = time.monotonic() + seconds
    while len(list(ready.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGINT)  # After the deadline too: the test then fails, not hangs.


# "ignored": how a background job of a non-interactive shell (a CI step) starts; Python then
# leaves SIGINT ignored, and so would the workers, unless the launcher takes it over.
@pytest.mark.parametrize("inherited", [signal.default_int_handler, signal.SIG_IGN],
                         ids=["default", "ignored"])
def test_launcher_passes_ctrl_c_to_every_worker(tmp_path, inherited):
    ready, out = tmp_path / "ready", tmp_path / "out"
    ready.mkdir()
    out.mkdir()
    # Each worker says it is inside its `try` (a file), and the Ctrl-C waits for both: no
    # timer to race against a slow start on a busy machine.
    script = ("import json, os, signal, sys, time; i = json.loads(os.environ['TF_CONFIG'])"
              f"['task']['index']\ntry:\n"
              f"    open(os.path.join({str(ready)!r}, f'ready_{{i}}'), 'w').close()\n"
              "    time.sleep(120)\nexcept KeyboardInterrupt:\n"
              f"    open(os.path.join({str(out)!r}, f'interrupted_{{i}}'), 'w').close()\n"
              "    sys.exit(1)")
    previous = signal.signal(signal.SIGINT, inherited)
    sender = threading.Thread(target=_interrupt_once_ready, args=(ready, 2), daemon=True)
    try:
        sender.start()
        status = local_cluster.run([sys.executable, "-c", script], 2, output=io.StringIO())
        sender.join()
        assert signal.getsignal(signal.SIGINT) is inherited  # The launcher restored it.
    finally:
        signal.signal(signal.SIGINT, previous)
    assert status == 130
    assert sorted(p.name for p in out.iterdir()) == ["interrupted_0", "interrupted_1"]


def test_launcher_cli_adds_the_multi_worker_strategy_and_refuses_others():
    command = summary_local_cluster.worker_command("tfstiffness.cli.summary", ["--model", "m"])
    assert command[-3:] == ["--model", "m", "--strategy=multi_worker"]
    kept = summary_local_cluster.worker_command("tfstiffness.cli.summary",
                                                ["--strategy", "multi_worker"])
    assert kept[-2:] == ["--strategy", "multi_worker"]
    for given in (["--strategy=mirrored"], ["--strategy", "none"]):
        with pytest.raises(cli.CommandError, match="--strategy .*: the local cluster runs"):
            summary_local_cluster.worker_command("tfstiffness.cli.summary", given)
    other = summary_local_cluster.worker_command("tests.support.multiworker_job", ["a"])
    assert other == [sys.executable, "-m", "tests.support.multiworker_job", "a"]
    with pytest.raises(ValueError, match="workers: expected a positive integer, got 0"):
        local_cluster.run(["true"], 0)


# ---------------------------------------------------------------------------------------------
# Two worker processes on loopback with MultiWorkerMirroredStrategy (slow)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    """A compiled model saved as .keras and its data, as a user would bring them."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(3)])
    model.compile(loss=LOSS)
    model.save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    n = 60
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(n, 6)).astype("float32"),
             y=rng.integers(0, 3, n))
    return tmp_path


def _one_process(saved) -> tuple[dict, np.ndarray]:
    model = keras.saving.load_model(saved / "model.keras")
    with np.load(saved / "data.npz") as data:
        x, y = data["x"], data["y"]
    summary = tfs.stiffness_summary(model, x, y, **SETTINGS)
    return summary_arrays(summary), tfs.gradient_gram(model, x[:12], y[:12]).total


def _launcher(saved, *job_args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tfstiffness.cli.summary_local_cluster", "--workers", "2",
         "--module", "tests.support.multiworker_job", "--", str(saved / "model.keras"),
         str(saved / "data.npz"), str(saved), *job_args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT))


def _results(saved) -> list[dict]:
    out = []
    for index in (0, 1):
        with np.load(saved / f"result_{index}.npz") as result:
            out.append({key: result[key] for key in result.files})
    return out


@pytest.mark.slow
def test_two_workers_equal_one_process_and_only_the_chief_writes(saved):
    launcher = _launcher(saved, "--checkpoint", str(saved / "state_{index}.npz"))
    log, _ = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, log[-4000:]
    expected, gram = _one_process(saved)
    chief, other = _results(saved)
    assert chief["chief"] and not other["chief"]
    for result in (chief, other):  # every worker ends with the same numbers
        _assert_same_numbers(result, expected)
        blocks = result["blocks_by_worker"]
        assert len(blocks) == 2 and min(blocks) > 0 and sum(blocks) == 78, blocks  # divided
        assert int(result["blocks_total"]) == 78 and int(result["blocks_resumed"]) == 0
        # gradient_gram under the same strategy gathers every block on every worker
        assert np.abs(result["gram"] - gram).max() <= 1e-5 * np.abs(gram).max()
    assert (saved / "state_0.npz").exists() and not (saved / "state_1.npz").exists()
    assert "blocks by worker (39, 39)" in log


@pytest.mark.slow
def test_killed_chief_then_the_same_command_resumes_to_the_same_numbers(saved):
    checkpoint = saved / "state.npz"  # one path for both workers: only the chief writes it
    args = ("--checkpoint", str(checkpoint), "--checkpoint_every", "0")
    launcher = _launcher(saved, *args)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    chief_pid = None
    while time.monotonic() < deadline and launcher.poll() is None:
        found = [re.search(r"worker 0 \(chief\): pid (\d+)", line) for line in list(lines)]
        chief_pid = next((int(m.group(1)) for m in found if m), chief_pid)
        if chief_pid and done_pairs(checkpoint) >= 10:
            os.kill(chief_pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert launcher.poll() is None, "the cluster ended before the chief could be killed"
    status = launcher.wait(timeout=120)  # the launcher stops the other worker and fails
    reader.join(timeout=10)
    assert status == 128 + signal.SIGKILL, "".join(lines)[-3000:]
    done_after = done_pairs(checkpoint)
    assert 10 <= done_after < 78 and not (saved / "result_0.npz").exists()

    again = _launcher(saved, *args)
    log, _ = again.communicate(timeout=300)
    assert again.returncode == 0, log[-4000:]
    expected, _ = _one_process(saved)
    for result in _results(saved):
        _assert_same_numbers(result, expected)
        assert int(result["blocks_resumed"]) == done_after
        assert sum(result["blocks_by_worker"]) + done_after == 78


@pytest.mark.slow
def test_workers_with_different_data_are_refused_on_every_worker(saved):
    launcher = _launcher(saved, "--perturb_worker", "1")
    log, _ = launcher.communicate(timeout=300)
    assert launcher.returncode != 0
    assert log.count("ValueError: strategy: the cluster's workers are not measuring the "
                     "same run: data differs on worker(s) [1] from the chief (0)") >= 1, log[-3000:]
    assert not (saved / "result_0.npz").exists()
