"""Walker's extensions: boundary AUC (`tfstiffness.measures.neighbourhood`), the neighbourhoods and
layerwise studies (`tfstiffness.studies`), their binaries, resume, kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO_ROOT
from tfstiffness import studies
from tfstiffness.cli import layerwise as layerwise_cli
from tfstiffness.cli import neighbourhoods as neighbourhoods_cli
from tfstiffness.measures import neighbourhood

REPO = REPO_ROOT
# Tiny settings: a 12 x 12 grid has step 0.18, so radii below that would find no neighbour.
TINY_NB = {"grid_n": 12, "epochs": 2, "radii": (0.2, 0.3)}
TINY_LW = {"grid_n": 10, "epochs": 2, "probe_per_class": 6, "hidden_widths": ((6, 3), (3, 6)),
           "activations": ("relu", "tanh")}


# --------------------------------------------------------------------------------------------
# boundary_auc
# --------------------------------------------------------------------------------------------


def _pair_counting_auc(values, distance, within):
    """Reference: fraction of (positive, negative) pairs ordered right, ties half."""
    keep = ~np.isnan(values)
    scores, positive = 1.0 - values[keep], distance[keep] <= within
    wins = 0.0
    for sp in scores[positive]:
        for sn in scores[~positive]:
            wins += 1.0 if sp > sn else 0.5 if sp == sn else 0.0
    return wins / (positive.sum() * (~positive).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundary_auc_matches_pair_counting(seed):
    rng = np.random.default_rng(seed)
    # Values on a coarse lattice so that many ties occur, and some NaN (no neighbour).
    values = rng.integers(-4, 5, size=60) / 4.0
    values[rng.choice(60, size=5, replace=False)] = np.nan
    distance = rng.uniform(0, 0.5, size=60)
    details = neighbourhood.boundary_auc_details(values, distance, within=0.15)
    assert details.auc == pytest.approx(_pair_counting_auc(values, distance, 0.15), abs=1e-12)
    assert details.ignored == 5
    assert details.positives + details.negatives == 55
    assert details.positives == int((distance[~np.isnan(values)] <= 0.15).sum())


def test_boundary_auc_hand_made_cases():
    distance = np.array([0.0, 0.05, 0.1, 0.5, 0.7, 0.9])  # Three positives (<= 0.1, inclusive).
    assert neighbourhood.boundary_auc([-0.5, 0.0, 0.1, 0.8, 0.9, 1.0], distance) == 1.0
    assert neighbourhood.boundary_auc([0.8, 0.9, 1.0, -0.5, 0.0, 0.1], distance) == 0.0
    assert neighbourhood.boundary_auc(np.full(6, 0.3), distance) == 0.5
    # One tie between a positive and a negative out of 9 pairs: 8.5 / 9.
    assert neighbourhood.boundary_auc([-0.5, 0.0, 0.5, 0.5, 0.9, 1.0], distance) == pytest.approx(
        8.5 / 9)
    assert neighbourhood.boundary_auc([-0.5, 0.0, 0.1, 0.8, 0.9, 1.0], distance, within=0.0) == 1.0


def test_boundary_auc_undefined_and_bad_inputs():
    assert np.isnan(neighbourhood.boundary_auc([0.1, 0.2], [0.5, 0.6]))  # No positive.
    details = neighbourhood.boundary_auc_details([np.nan, 0.2], [0.0, 0.6])  # Positive is NaN.
    assert np.isnan(details.auc) and details.ignored == 1
    with pytest.raises(ValueError, match="2 neighbourhood values for 3"):
        neighbourhood.boundary_auc([0.1, 0.2], [0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="within"):
        neighbourhood.boundary_auc([0.1], [0.0], within=-1.0)


# --------------------------------------------------------------------------------------------
# Neighbourhood study: schema, resume
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_neighbourhoods(tmp_path_factory):
    out = tmp_path_factory.mktemp("nb") / "run"
    return out, studies.run_neighbourhoods(str(out), verbose=False, **TINY_NB)


def test_run_neighbourhoods_schema(tiny_neighbourhoods):
    out, summary = tiny_neighbourhoods
    assert json.loads((out / "summary.json").read_text()) == summary
    assert set(summary) == {"config", "versions", "results", "run"}
    assert summary["config"]["radii"] == [0.2, 0.3] and summary["config"]["grid_n"] == 12
    results = summary["results"]
    assert results["num_points"] == 144 and set(results["stages"]) == {"init", "trained"}
    for stage in results["stages"].values():
        assert {"accuracy", "loss", "within_class", "between_class", "zero_gradients",
                "radii"} <= set(stage)
        assert set(stage["radii"]) == {"0.2", "0.3"}
        for per_radius in stage["radii"].values():
            assert 0.0 <= per_radius["auc"] <= 1.0
            assert per_radius["positives"] == results["boundary_points"]
            assert per_radius["no_neighbour"] == 0 == per_radius["ignored"]
    with np.load(out / "results.npz") as data:
        assert data["init_values"].shape == data["trained_values"].shape == (2, 144)
        assert data["x"].shape == (144, 2) and data["train_loss"].shape == (2,)
        # The summary's AUCs are those of the saved maps.
        auc = neighbourhood.boundary_auc(data["trained_values"][1], data["boundary_distance"])
    assert auc == pytest.approx(results["stages"]["trained"]["radii"]["0.3"]["auc"])
    assert (out / "figures" / "neighbourhoods.png").stat().st_size > 10_000
    assert any((out / "tensorboard").iterdir())


def test_rerun_skips_finished_stages_with_same_results(tiny_neighbourhoods, capsys):
    out, first = tiny_neighbourhoods
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()}
    second = studies.run_neighbourhoods(str(out), verbose=True, **TINY_NB)
    assert "skipping finished stages ['init', 'trained']" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").iterdir()} == stamps
    assert second["results"] == first["results"]


def test_lost_trained_stage_is_recomputed_identically(tiny_neighbourhoods, tmp_path):
    out, first = tiny_neighbourhoods
    # A copy holding only the init checkpoint, as a run killed during training leaves it.
    copy = tmp_path / "run"
    (copy / "stages").mkdir(parents=True)
    (copy / "config.json").write_bytes((out / "config.json").read_bytes())
    (copy / "stages" / "init.npz").write_bytes((out / "stages" / "init.npz").read_bytes())
    again = studies.run_neighbourhoods(str(copy), verbose=False, **TINY_NB)
    assert again["run"]["skipped_stages"] == ["init"]
    assert again["results"] == first["results"]


def test_rerun_with_other_settings_is_refused(tiny_neighbourhoods):
    out, _ = tiny_neighbourhoods
    with pytest.raises(ValueError, match="epochs: saved 2, now 3"):  # ConfigMismatchError
        studies.run_neighbourhoods(str(out), verbose=False, **{**TINY_NB, "epochs": 3})


# --------------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------------


def _run(binary, *args):
    with pytest.raises(SystemExit) as info:
        binary.run([binary.__name__.rsplit(".", 1)[-1], *args])
    return info.value.code or 0


def test_neighbourhoods_binary_writes_outputs_and_refuses_other_flags(tmp_path, capsys):
    out = tmp_path / "nb"
    args = [f"--output_dir={out}", "--grid_n=10", "--epochs=1", "--radii=0.25", "--widths=8",
            "--quiet"]
    assert _run(neighbourhoods_cli, *args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["widths"] == [8] and summary["config"]["radii"] == [0.25]
    assert set(summary["results"]["stages"]["trained"]["radii"]) == {"0.25"}
    assert (out / "results.npz").exists() and (out / "figures/neighbourhoods.png").exists()
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["figures", "stiffness",
                                                                        "train"]
    # Same directory, other flags: one line naming the flag, not a traceback.
    assert _run(neighbourhoods_cli, *args, "--epochs=2") == 1
    err = capsys.readouterr().err
    assert "epochs: saved 1, now 2" in err and "Traceback" not in err
    assert _run(neighbourhoods_cli, *args, "extra") == 2
    assert "unexpected arguments: extra" in capsys.readouterr().err


def test_layerwise_binary_writes_outputs(tmp_path):
    out = tmp_path / "lw"
    assert _run(layerwise_cli, f"--output_dir={out}", "--grid_n=8", "--epochs=1",
                "--probe_per_class=4", "--hidden_widths=5-3,3-5", "--activations=relu,tanh",
                "--quiet") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["hidden_widths"] == [[5, 3], [3, 5]]
    models = summary["results"]["models"]
    assert list(models) == ["5-3_relu", "5-3_tanh", "3-5_relu", "3-5_tanh"]
    for entry in models.values():
        assert entry["layers"] == ["dense_0", "dense_1", "logits"]  # Layer order.
        assert 0.0 <= entry["train_set_accuracy"] <= 1.0 and entry["train_set_loss"] > 0
        for phase in ("untrained", "trained"):
            assert {"within", "between", "total_within", "total_between", "probe_accuracy",
                    "probe_loss", "zero_gradients"} <= set(entry[phase])
            assert len(entry[phase]["within"]) == len(entry[phase]["between"]) == 3
    with np.load(out / "results.npz") as data:
        assert data["5-3_relu/trained/class_matrices"].shape == (3, 2, 2)
        assert data["probe_indices"].shape == (8,)
    assert (out / "figures" / "layerwise.png").stat().st_size > 10_000
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == sorted([*models,
                                                                              "figures"])


def test_layerwise_values_match_a_direct_measurement(tmp_path):
    """The study's untrained numbers are those of layerwise_stiffness on the same probe."""
    import keras

    from tfstiffness import gradient_gram, layerwise_stiffness, models
    from tfstiffness.data import synthetic

    summary = studies.run_layerwise(str(tmp_path), verbose=False, **TINY_LW)
    with np.load(tmp_path / "results.npz") as data:
        probe = data["probe_indices"]
    x, y = synthetic.two_arcs_grid(TINY_LW["grid_n"])
    # Balanced: probe_per_class of each class.
    assert np.bincount(y[probe]).tolist() == [6, 6]
    keras.utils.set_random_seed(0)
    model = models.toy_mlp(2, 2, widths=(3, 6), activation="tanh")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    gram = gradient_gram(model, x[probe], y[probe], loss=loss, by_layer=True)
    direct = layerwise_stiffness(gram, y[probe], num_classes=2)
    entry = summary["results"]["models"]["3-6_tanh"]["untrained"]
    np.testing.assert_allclose(entry["within"], [r.within for r in direct.values()], atol=1e-6)
    np.testing.assert_allclose(entry["between"], [r.between for r in direct.values()], atol=1e-6)


def test_layerwise_tfds_image_set_under_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        summary = studies.run_layerwise(
            str(tmp_path), dataset="mnist", hidden_widths=((4,),), activations=("relu",),
            epochs=1, probe_per_class=2, max_train_examples=30, verbose=False)
    results = summary["results"]
    assert results["num_train"] == 30 and results["num_classes"] == 10  # From data.load.
    assert sum(results["probe_class_counts"]) == results["probe_size"]
    assert max(results["probe_class_counts"]) <= 2
    entry = results["models"]["4_relu"]
    assert entry["layers"] == ["dense_0", "logits"]
    with np.load(tmp_path / "results.npz") as data:
        k = results["num_classes"]
        assert data["4_relu/trained/class_matrices"].shape == (2, k, k)


# --------------------------------------------------------------------------------------------
# A real kill: SIGKILL after the first checkpoint, then restart
# --------------------------------------------------------------------------------------------


def _binary_command(out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "tfstiffness.cli.neighbourhoods", f"--output_dir={out}",
            "--grid_n=12", f"--epochs={epochs}", "--radii=0.2,0.3"]


@pytest.mark.slow
def test_sigkill_after_first_stage_then_restart_gives_same_results(tmp_path):
    epochs = 60  # Long enough that training is still running when the kill lands.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = tmp_path / "killed"
    process = subprocess.Popen(_binary_command(killed, epochs), env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (killed / "stages" / "init.npz").exists():
            assert process.poll() is None, "the binary exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "stages" / "trained.npz").exists(), "killed too late to test resume"
    assert not (killed / "summary.json").exists()

    restarted = subprocess.run(_binary_command(killed, epochs), env=env, cwd=REPO, check=False,
                               capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "skipping finished stages ['init']" in restarted.stdout
    assert "took over the lock left by a run that ended" in restarted.stdout

    reference = tmp_path / "reference"
    studies.run_neighbourhoods(str(reference), grid_n=12, epochs=epochs, radii=(0.2, 0.3),
                              verbose=False)
    with np.load(killed / "results.npz") as a, np.load(reference / "results.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    summary_a = json.loads((killed / "summary.json").read_text())
    summary_b = json.loads((reference / "summary.json").read_text())
    assert summary_a["results"] == summary_b["results"]
    assert [p.name for p in killed.rglob(".*.tmp")] == []


def test_seeds_for_walkers_studies(tmp_path):
    """Both Walker studies repeat over seeds: per-seed runs, the mean with an interval."""
    nb = studies.run_neighbourhoods(str(tmp_path / "nb"), verbose=False, seeds=[0, 1], **TINY_NB)
    aucs = [nb["results"]["per_seed"][f"seed={s}"]["stages"]["trained"]["radii"] for s in (0, 1)]
    radius = next(iter(aucs[0]))
    combined = nb["results"]["across_seeds"]["stages"]["trained"]["radii"][radius]["auc"]
    values = [a[radius]["auc"] for a in aucs]
    if values[0] != values[1]:
        assert combined["values"] == values and combined["mean"] == pytest.approx(
            np.mean(values))
    assert (tmp_path / "nb" / "figures" / "neighbourhoods.png").stat().st_size > 1000
    assert (tmp_path / "nb" / "tensorboard" / "seed=1" / "stiffness").is_dir()
    lw = studies.run_layerwise(str(tmp_path / "lw"), verbose=False, seeds=[0, 1], **TINY_LW)
    key = next(iter(lw["results"]["per_seed"]["seed=0"]["models"]))
    within = lw["results"]["across_seeds"]["models"][key]["trained"]["within"]
    assert len(within) == len(lw["results"]["per_seed"]["seed=0"]["models"][key]["layers"])
    assert (tmp_path / "lw" / "figures" / "layerwise.png").stat().st_size > 1000
