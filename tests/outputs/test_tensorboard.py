"""Tests for tfstiffness.outputs.tensorboard: write summaries, read the event files back, compare."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.plugins.hparams import metadata as hp_metadata

from tfstiffness.outputs import plots, tensorboard


def _read(logdir) -> list[tuple[int, tf.compat.v1.Summary.Value]]:
    """(step, summary value) of every event in the event files directly in logdir."""
    out = []
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            out.extend((event.step, value) for value in event.summary.value)
    return out


def _by_tag(logdir) -> dict[str, list[tuple[int, tf.compat.v1.Summary.Value]]]:
    tags: dict[str, list] = {}
    for step, value in _read(logdir):
        tags.setdefault(value.tag, []).append((step, value))
    return tags


def test_write_scalars_exact_values_and_skips(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    written = {}
    for step in range(3):
        values = {"within": 0.1 * step + 0.123456, "between": np.float32(-0.05 * step),
                  "xi": None if step == 0 else (np.nan if step == 1 else 0.75),
                  "count": np.array(7 + step)}
        tags = tensorboard.write_scalars(writer, values, step)
        for name, value in values.items():
            if value is not None and np.isfinite(value):
                written[(f"stiffness/{name}", step)] = np.float32(value)
        assert tags == [t for (t, s) in written if s == step]
    # Written even where a surrounding recording condition says no (Keras' TensorBoard callback).
    with tf.summary.record_if(False):
        assert tensorboard.write_scalars(writer, {"within": 2.5}, step=9, prefix="late") == [
            "late/within"]
    written[("late/within", 9)] = np.float32(2.5)
    writer.close()

    read = {}
    for step, value in _read(tmp_path):
        read[(value.tag, step)] = tf.make_ndarray(value.tensor)
    assert set(read) == set(written)
    for key, value in written.items():
        assert read[key].dtype == np.float32 and read[key] == value, key


def test_write_class_matrix_image_and_figure(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    C = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 10))
    C[0, 3] = np.nan
    fine_to_coarse = np.repeat(np.arange(5), 2)[::-1]
    tensorboard.write_class_matrix_image(writer, C, step=4, fine_to_coarse=fine_to_coarse)
    fig = plots.layerwise_curves({"run": {"dense": 0.2, "dense_1": 0.1}})
    tensorboard.write_figure(writer, fig, "stiffness/layers", step=5, dpi=80)
    writer.close()

    expected = {
        "stiffness/class_matrix": (4, plots.class_matrix(C, fine_to_coarse), 100),
        "stiffness/layers": (5, fig, 80),
    }
    tags = _by_tag(tmp_path)
    assert set(tags) == set(expected)
    for tag, (step, figure, dpi) in expected.items():
        [(read_step, value)] = tags[tag]
        assert read_step == step
        assert value.metadata.plugin_data.plugin_name == "images"
        width, height, png = value.tensor.string_val
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        want_w, want_h = np.round(figure.get_size_inches() * dpi).astype(int)
        assert image.size == (want_w, want_h) == (int(width), int(height))
        assert image.mode in ("RGB", "RGBA")


def test_figure_to_png_renders_at_dpi():
    fig = plots.superclass_matrix(np.eye(3))
    png = tensorboard.figure_to_png(fig, dpi=50)
    size = Image.open(io.BytesIO(png)).size
    assert size == tuple(np.round(fig.get_size_inches() * 50).astype(int))


def test_write_histogram(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    S = np.random.default_rng(0).uniform(-1, 1, (6, 6))
    S[1, 2] = np.nan
    assert tensorboard.write_histogram(writer, S, "stiffness/offdiag", step=1,
                                   exclude_diagonal=True, buckets=12) == 29
    assert tensorboard.write_histogram(writer, [0.5, np.inf, 0.25], "stiffness/all", step=2) == 2
    with pytest.raises(ValueError):
        tensorboard.write_histogram(writer, np.zeros((2, 3)), "bad", 0, exclude_diagonal=True)
    writer.close()

    tags = _by_tag(tmp_path)
    assert set(tags) == {"stiffness/offdiag", "stiffness/all"}
    [(step, value)] = tags["stiffness/offdiag"]
    assert step == 1 and value.metadata.plugin_data.plugin_name == "histograms"
    buckets = tf.make_ndarray(value.tensor)  # [buckets, 3]: left edge, right edge, count
    assert buckets.shape == (12, 3) and buckets[:, 2].sum() == 29
    off = S[~np.eye(6, dtype=bool)]
    off = off[np.isfinite(off)]
    assert buckets[0, 0] == pytest.approx(off.min()) and buckets[-1, 1] == pytest.approx(off.max())
    [(step, value)] = tags["stiffness/all"]
    assert tf.make_ndarray(value.tensor)[:, 2].sum() == 2


def test_hparams_sweep_of_three_runs(tmp_path):
    rates = [1e-3, 1e-2, 1e-1]
    root = tf.summary.create_file_writer(str(tmp_path))
    tensorboard.write_hparams_config(
        root, {"learning_rate": rates, "optimizer": ["adam"]},
        metrics=["stiffness/within", "stiffness/between"])
    root.close()
    for lr in rates:
        writer = tf.summary.create_file_writer(str(tmp_path / f"lr={lr:g}"))
        tensorboard.write_hparams(writer, {"learning_rate": np.float64(lr), "optimizer": "adam"})
        tensorboard.write_scalars(writer, {"within": 0.5 - lr, "between": lr}, step=1)
        writer.close()

    [(_, value)] = _read(tmp_path)
    assert value.tag == hp_metadata.EXPERIMENT_TAG
    assert value.metadata.plugin_data.plugin_name == "hparams"
    experiment = hp_metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    infos = {info.name: info for info in experiment.hparam_infos}
    assert [v.number_value for v in infos["learning_rate"].domain_discrete.values] == rates
    assert [m.name.tag for m in experiment.metric_infos] == ["stiffness/within",
                                                             "stiffness/between"]

    for lr in rates:
        tags = _by_tag(tmp_path / f"lr={lr:g}")
        assert set(tags) == {hp_metadata.SESSION_START_INFO_TAG, "stiffness/within",
                             "stiffness/between"}
        [(_, value)] = tags[hp_metadata.SESSION_START_INFO_TAG]
        assert value.metadata.plugin_data.plugin_name == "hparams"
        start = hp_metadata.parse_session_start_info_plugin_data(
            value.metadata.plugin_data.content)
        assert start.hparams["learning_rate"].number_value == lr
        assert start.hparams["optimizer"].string_value == "adam"


def test_write_hparams_single_run_with_metrics(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    tensorboard.write_hparams(writer, {"learning_rate": 0.01, "layers": 3},
                          metrics=["stiffness/xi"], trial_id="trial-a")
    with pytest.raises(TypeError):
        tensorboard.write_hparams(writer, {"widths": [64, 8]})
    writer.close()
    tags = _by_tag(tmp_path)
    assert set(tags) == {hp_metadata.EXPERIMENT_TAG, hp_metadata.SESSION_START_INFO_TAG}
    [(_, value)] = tags[hp_metadata.SESSION_START_INFO_TAG]
    start = hp_metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
    assert start.group_name == "trial-a"
    assert start.hparams["layers"].number_value == 3
    [(_, value)] = tags[hp_metadata.EXPERIMENT_TAG]
    experiment = hp_metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    assert [m.name.tag for m in experiment.metric_infos] == ["stiffness/xi"]


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["true", "false"])
def test_tensorboard_serves_per_step_files_live_and_each_step_once(tmp_path, load_fast):
    """TensorBoard 2.21 (its data server and the Python loader) reads every event file of a
    run directory, picks up new ones while running, and a replaced file adds no point."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    run = tmp_path / "logs" / "stiffness"

    def write(step, value):
        with tensorboard.step_events(run, step, staging_dir=tmp_path) as writer:
            tensorboard.write_scalars(writer, {"within": value}, step)

    write(0, 0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path / "logs"),
         "--port", str(port), "--reload_interval", "1", f"--load_fast={load_fast}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = (f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=stiffness&"
           "tag=stiffness/within")

    def points(expected, seconds=90):
        deadline = time.monotonic() + seconds
        while True:
            try:
                got = [(p[1], round(p[2], 3)) for p in json.load(
                    urllib.request.urlopen(url, timeout=5))]
            except OSError:
                got = None
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(0.5)

    try:
        assert points([(0, 0.5)]) == [(0, 0.5)]
        write(1, 0.6)
        assert points([(0, 0.5), (1, 0.6)]) == [(0, 0.5), (1, 0.6)]
        write(1, 0.6)  # A resumed run redoing step 1 replaces its file.
        write(2, 0.7)
        assert points([(0, 0.5), (1, 0.6), (2, 0.7)]) == [(0, 0.5), (1, 0.6), (2, 0.7)]
        time.sleep(3)  # Several reloads later, still once each.
        assert points(None, seconds=0) == [(0, 0.5), (1, 0.6), (2, 0.7)]
    finally:
        server.terminate()
        server.wait()
