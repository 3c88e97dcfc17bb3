"""Streaming aggregates equal the in-memory measures; runs resume after a kill; strategies agree."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support import REPO_ROOT
from tests.support.models_zoo import ZOO, data_for
from tests.support.streaming_checkpoints import done_pairs

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
ROOT = str(REPO_ROOT)
EDGES = np.linspace(0, 2, 9)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.mark.parametrize("name", ["dense_net", "conv_net"])
def test_one_set_equals_in_memory(name):
    model = ZOO[name]()
    x, y = data_for(name, 23)
    summary = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=5, distance_edges=EDGES,
                                    radius=4.5, fine_to_coarse=[0, 0, 1])
    gram = tfs.gradient_gram(model, x, y, loss=LOSS)
    np.testing.assert_allclose(summary.sq_norms, gram.sq_norms, rtol=1e-5)
    for kind in ("sign", "cosine"):
        S = tfs.stiffness_matrix(gram, kind)
        C = tfs.class_stiffness(S, y)
        np.testing.assert_allclose(summary.class_matrix[kind], C, atol=1e-6)
        within, between = tfs.within_between(C)
        assert summary.within[kind] == pytest.approx(within, abs=1e-6)
        assert summary.between[kind] == pytest.approx(between, abs=1e-6)
        assert summary.superclass_contrast[kind] == pytest.approx(
            tfs.superclass_contrast(C, [0, 0, 1]), abs=1e-6)
        curve = tfs.stiffness_vs_distance(S, x, labels=y, bins=EDGES)
        np.testing.assert_array_equal(summary.distance_curve[kind].counts, curve.counts)
        np.testing.assert_allclose(summary.distance_curve[kind].means, curve.means, atol=1e-6)
        near = tfs.neighbourhood_stiffness(S, x, radius=4.5)
        np.testing.assert_array_equal(summary.neighbour_counts, near.counts)
        np.testing.assert_allclose(summary.neighbourhood[kind], near.values, atol=1e-6)
    assert summary.blocks_total == 15  # 5 blocks -> 5 * 6 / 2 pairs


def test_two_sets_equal_in_memory_and_gaussian_neighbourhoods():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 13)
    x2, y2 = data_for("dense_net", 9, seed=4)
    summary = tfs.stiffness_summary(model, x, y, loss=LOSS, x2=x2, y2=y2, block_size=4,
                                    distance_edges=EDGES, pairs="between")
    S = tfs.stiffness_matrix(tfs.gradient_gram(model, x, y, loss=LOSS, x2=x2, y2=y2), "cosine")
    np.testing.assert_allclose(summary.class_matrix["cosine"], tfs.class_stiffness(S, y, y2),
                               atol=1e-6)
    curve = tfs.stiffness_vs_distance(S, x, labels=y, x2=x2, labels2=y2, pairs="between",
                                      bins=EDGES)
    np.testing.assert_allclose(summary.distance_curve["cosine"].means, curve.means, atol=1e-6)
    gauss = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, radius=3.0,
                                  weighting="gaussian", distance_edges=())
    S1 = tfs.stiffness_matrix(tfs.gradient_gram(model, x, y, loss=LOSS), "cosine")
    near = tfs.neighbourhood_stiffness(S1, x, radius=3.0, weighting="gaussian")
    np.testing.assert_allclose(gauss.neighbourhood["cosine"], near.values, atol=1e-6)
    assert gauss.distance_curve == {}


def test_checkpoint_for_other_settings_is_refused(tmp_path):
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 8)
    path = tmp_path / "state.npz"
    first = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)
    again = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path)
    assert again.blocks_resumed == again.blocks_total == 3
    np.testing.assert_array_equal(again.class_matrix["cosine"], first.class_matrix["cosine"])
    with pytest.raises(ValueError, match="checkpoint: .* was written for a different run: "
                                         "setting pairs differ"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, checkpoint=path,
                              pairs="all")
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temp files left


def test_bad_arguments():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 6)
    with pytest.raises(ValueError, match="kinds: expected kinds among"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, kinds=("angle",))
    with pytest.raises(ValueError, match="pairs: expected one of"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, pairs="some")
    with pytest.raises(ValueError, match="radius: neighbourhood stiffness needs one set"):
        tfs.stiffness_summary(model, x, y, loss=LOSS, x2=x, y2=y, radius=1.0)


@pytest.mark.parametrize("radius", [-1.0, float("nan"), float("inf"), "0.5", True])
def test_bad_radius_is_refused(radius):
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 6)
    with pytest.raises(ValueError, match=r"radius must be a finite number >= 0, got "
                                         + repr(radius).replace("(", r"\(")):
        tfs.stiffness_summary(model, x, y, loss=LOSS, radius=radius)


def test_no_neighbour_is_counted_with_a_radius_that_finds_them():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 11)
    pairwise = np.linalg.norm(x.reshape(11, 1, -1) - x.reshape(1, 11, -1), axis=-1)
    np.fill_diagonal(pairwise, np.inf)
    nearest = pairwise.min(1)  # brute force: each point's nearest other point
    small = float(nearest.min()) / 2  # no point has a neighbour this close
    with pytest.warns(UserWarning, match=r"11 of 11 points have no neighbour within radius "
                                         r".*; radius (\S+) gives 90% of the points") as record:
        summary = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, radius=small)
    assert np.isnan(summary.neighbourhood["cosine"]).all()
    np.testing.assert_allclose(summary.nearest_distances, nearest, rtol=1e-6)
    suggested = float(str(record[-1].message).rsplit("radius ", 1)[1].split()[0])
    assert suggested == tfs.measures.neighbourhood.suggested_radius(nearest)
    assert (nearest <= suggested).mean() >= 0.9  # as promised, from the brute-force distances
    assert (nearest <= suggested * 0.99).mean() < 0.9  # and no larger than it needs to be
    again = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=4, radius=suggested)
    assert (again.neighbour_counts > 0).mean() >= 0.9
    np.testing.assert_array_equal(again.neighbour_counts, (pairwise <= suggested).sum(1))


def _job(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "tests.support.streaming_job", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), **kwargs)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    reference = tmp_path / "reference.npz"
    assert _job(str(reference)).wait(timeout=300) == 0
    checkpoint, resumed = tmp_path / "state.npz", tmp_path / "resumed.npz"
    job = _job(str(resumed), str(checkpoint))
    deadline = time.monotonic() + 300
    while done_pairs(checkpoint) < 20 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.poll() is None, "the run ended before it could be interrupted"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    done_at_kill = done_pairs(checkpoint)
    assert 0 < done_at_kill < 78  # 12 blocks -> 78 pairs
    assert _job(str(resumed), str(checkpoint)).wait(timeout=300) == 0
    with np.load(reference) as ref, np.load(resumed) as res:
        assert int(res["resumed"]) >= done_at_kill
        for key in ("cosine", "sign", "curve", "neighbourhood"):
            np.testing.assert_array_equal(res[key], ref[key], err_msg=key)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_matches_no_strategy():
    job = _job("--two-devices")
    out, err = job.communicate(timeout=600)
    assert job.returncode == 0, err[-3000:]
    gram_err, class_err = map(float, out.split("ERRORS")[1].split())
    assert gram_err <= 1e-5 and class_err <= 1e-6


def test_alignment_family_streamed_equals_in_memory():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 17)
    summary = tfs.stiffness_summary(model, x, y, loss=LOSS, block_size=5)
    memory = tfs.alignment_statistics(tfs.gradient_gram(model, x, y, loss=LOSS), y)
    assert summary.alignment.m_coherence() == pytest.approx(memory.m_coherence(), rel=1e-5)
    np.testing.assert_allclose(summary.alignment.class_m_coherence(),
                               memory.class_m_coherence(), rtol=1e-5)
    for kind in ("gram", "cosine"):
        assert summary.alignment.gradient_confusion(kind) == pytest.approx(
            memory.gradient_confusion(kind), rel=1e-5, abs=1e-7)


FIXTURE = REPO_ROOT / "tests" / "fixtures" / "streaming"


def test_checkpoint_from_before_the_move_resumes_to_a_fresh_run(tmp_path):
    """A checkpoint written by the code before the package moved into folders (commit 37eeb17,
    by tests/fixtures/make_streaming_fixture.py: 8 of 21 blocks done) resumes under this code.

    It resumes rather than being refused because nothing its fingerprint covers changed in the
    move: the model loads from its `.keras` file with the same layer and variable names and
    weights, the loss, data, method, block size and settings are the same, and the state's
    keys and shapes are unchanged. The resumed summary must equal a fresh run to float
    round-off (blocks are summed in another order); both are computed here, nothing is
    hard-coded.
    """
    settings = json.loads((FIXTURE / "settings.json").read_text())
    with np.load(FIXTURE / "data.npz") as data:
        x, y = data["x"], data["y"]
    model = keras.models.load_model(FIXTURE / "model.keras", compile=False)
    checkpoint = tmp_path / "checkpoint.npz"  # a copy: resuming writes to it
    shutil.copyfile(FIXTURE / "checkpoint.npz", checkpoint)

    resumed = tfs.stiffness_summary(model, x, y, checkpoint=checkpoint, **settings)
    fresh = tfs.stiffness_summary(model, x, y, **settings)

    assert (resumed.blocks_resumed, resumed.blocks_total) == (8, 21)
    assert resumed.blocks_by_worker == (13,)
    np.testing.assert_allclose(resumed.sq_norms, fresh.sq_norms, rtol=1e-6)
    for kind in ("sign", "cosine"):
        np.testing.assert_allclose(resumed.class_matrix[kind], fresh.class_matrix[kind],
                                   rtol=1e-6, atol=1e-7)
        assert resumed.superclass_contrast[kind] == pytest.approx(
            fresh.superclass_contrast[kind], rel=1e-6, abs=1e-7)
        np.testing.assert_array_equal(resumed.distance_curve[kind].counts,
                                      fresh.distance_curve[kind].counts)
        np.testing.assert_allclose(resumed.distance_curve[kind].means,
                                   fresh.distance_curve[kind].means, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(resumed.neighbourhood[kind], fresh.neighbourhood[kind],
                                   rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(resumed.neighbour_counts, fresh.neighbour_counts)
    assert resumed.alignment.m_coherence() == pytest.approx(fresh.alignment.m_coherence(),
                                                            rel=1e-6)
