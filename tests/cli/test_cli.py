"""Tests of the study binaries as a user runs them: flags, help, refusals, outputs, and (slow,
in subprocesses) live TensorBoard, quiet stderr, the output-directory lock, SIGINT and SIGKILL."""

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
from tests.support.events import scalar_events
from tfstiffness import data
from tfstiffness.cli import cifar100_superclass as superclass_cli
from tfstiffness.cli import class_stiffness as class_cli
from tfstiffness.cli import layerwise as layerwise_cli
from tfstiffness.cli import learning_rate_study as lr_cli
from tfstiffness.cli import neighbourhoods as neighbourhoods_cli
from tfstiffness.cli import text_transformer as text_cli
from tfstiffness.data.cifar100_labels import FINE_TO_COARSE

REPO = REPO_ROOT
PAIRS = ("train_train", "train_val", "val_val")
BINARIES = {"class_stiffness": class_cli, "cifar100_superclass": superclass_cli,
            "learning_rate_study": lr_cli, "text_transformer": text_cli,
            "neighbourhoods": neighbourhoods_cli, "layerwise": layerwise_cli}


def _run(binary, *args):
    """Runs a binary in this process as the command line would; returns its exit status."""
    with pytest.raises(SystemExit) as info:
        binary.run([binary.__name__.rsplit(".", 1)[-1], *args])
    return info.value.code or 0


def _summary(out):
    return json.loads((Path(out) / "summary.json").read_text())


def _assert_each_step_once(tensorboard):
    for run_dir in {p.parent for p in Path(tensorboard).rglob("events.out.tfevents.*")}:
        for tag, points in scalar_events(run_dir).items():
            steps = [step for step, _ in points]
            assert len(steps) == len(set(steps)), (run_dir, tag, steps)
            assert steps == sorted(steps), (run_dir, tag, steps)


def _check_class_schema(summary, num_classes, superclasses):
    """summary.json of the class studies: keys and types."""
    assert set(summary) == {"config", "versions", "results", "run"}
    assert {"python", "tensorflow", "keras", "numpy", "tfstiffness"} <= set(summary["versions"])
    res = summary["results"]
    assert res["num_classes"] == num_classes
    for key in ("train_examples", "val_examples", "train_probe", "val_probe", "parameters"):
        assert isinstance(res[key], int) and res[key] > 0, key
    assert res["gram_method"] == "ghost"
    epochs = res["epochs"]
    assert [e["epoch"] for e in epochs] == summary["config"]["eval_epochs"]
    assert res["final"] == epochs[-1]
    for entry in epochs:
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert isinstance(entry[key], float), key
        assert 0.0 <= entry["train_accuracy"] <= 1.0
        assert set(entry["stiffness"]) == set(PAIRS)
        intervals = summary["config"].get("bootstrap_samples", 0) > 0
        for pair in PAIRS:
            assert set(entry["stiffness"][pair]) == {"sign", "cosine"}
            for stats in entry["stiffness"][pair].values():
                expected = {"within", "between", "mean", "xi_crossing", "xi_linear_fit"}
                expected |= {"superclass_contrast"} if superclasses else set()
                expected |= {"intervals"} if intervals else set()
                assert set(stats) == expected
                xi = stats["xi_crossing"]
                assert xi["status"] in ("crossed", "never_crossed", "nonpositive_from_start",
                                        "no_pairs")
                assert (xi["xi"] is None) == (xi["status"] != "crossed")
                fit = stats["xi_linear_fit"]
                assert fit["status"] in ("fitted", "no_decay", "nonpositive_at_zero",
                                         "too_few_bins", "no_pairs")
                assert (fit["xi"] is None) == (fit["status"] != "fitted")
                assert (fit["extrapolated"] is None) == (fit["xi"] is None)
                if intervals:
                    curve = xi["status"] != "no_pairs"  # No xi without a within-class pair.
                    assert {"within", "between"} <= set(stats["intervals"])
                    assert ({"xi_crossing", "xi_linear_fit"} <= set(stats["intervals"])) == curve
                    for end in stats["intervals"]["within"].values():
                        assert end is None or isinstance(end, float)
            alignment = entry["alignment"][pair]
            if pair == "train_val":
                assert set(alignment) == {"summed_gradient_cosine"}
            else:
                assert {"m_coherence", "class_m_coherence", "gradient_diversity",
                        "gradient_confusion", "gradient_confusion_cosine"} <= set(alignment)
                assert len(alignment["class_m_coherence"]) == num_classes
                assert ("intervals" in alignment) == intervals
        assert set(entry["zero_gradients"]) == {"train", "val"}
    if superclasses:
        contrast = res["superclass_contrast"]
        assert all(isinstance(contrast[p][k], float) for p in PAIRS for k in ("sign", "cosine"))
    assert isinstance(summary["run"]["elapsed_s"], float)
    assert len(summary["run"]["train_seconds"]) == summary["config"]["epochs"]


def _check_files(out, figures, runs=("stiffness", "train", "validation", "figures")):
    out = Path(out)
    for name in ("config.json", "summary.json", "results.npz"):
        assert (out / name).is_file(), name
    for name in figures:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == sorted(runs)
    assert not list(out.rglob(".*.tmp"))
    _assert_each_step_once(out / "tensorboard")


# ------------------------------------------------------------------------------------------
# Help and flags
# ------------------------------------------------------------------------------------------


OWN_FLAGS = {
    "class_stiffness": {"synthetic_noise", "model", "eval_epochs", "max_val_examples"},
    "cifar100_superclass": {"synthetic_class_scale", "model", "eval_epochs"},
    "learning_rate_study": {"learning_rates", "loss_levels", "synthetic_spread"},
    "text_transformer": {"embed_dim", "num_blocks", "vocab_size", "sequence_length"},
    "neighbourhoods": {"radii", "widths", "weighting", "within", "grid_n"},
    "layerwise": {"hidden_widths", "activations", "grid_n", "probe_per_class"},
}


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_help_lists_only_the_binarys_own_flags(name, capsys):
    binary = BINARIES[name]
    assert _run(binary, "--help") == 0
    text = capsys.readouterr().out
    listed = {line.split()[0][2:].rstrip(",") for line in text.splitlines()
              if line.startswith("  --")}
    assert listed == {flag.name for flag in binary.FLAGS._flags().values()}
    assert OWN_FLAGS[name] <= listed
    for other, own in OWN_FLAGS.items():
        foreign = own - {f.name for f in binary.FLAGS._flags().values()}
        assert not {f"--{flag}" for flag in foreign} & set(text.split()), (other, foreign)
    assert "(default: the" not in text and "SGD mini-batch" not in text
    optimizer = "SGD" if name in ("neighbourhoods", "layerwise") else "Adam"
    assert f"{optimizer}'s constant learning rate" in text
    assert "Example:" in text and f"tfstiffness.cli.{name}" in text
    # Real defaults: those of the study function.
    assert "--epochs\n      Training epochs. (default: " in text


@pytest.mark.parametrize("args, message", [
    (["--batch_size", "-5"], "--batch_size=-5"),
    (["--batch_size", "0"], "--batch_size=0"),
    (["--learning_rate", "0"], "--learning_rate must be a finite number > 0"),
    (["--learning_rate", "-1e-3"], "--learning_rate must be a finite number > 0"),
    (["--learning_rate", "nan"], "--learning_rate must be a finite number > 0"),
    (["--eval_epochs", "a,b"], "--eval_epochs must be 'log', 'all' or comma-separated"),
    (["--dataset", "nosuch"], "--dataset=nosuch: value should be one of"),
    (["--probe_per_class", "0"], "--probe_per_class=0"),
    (["--bins", "0"], "--bins=0"),
    (["--max_train_examples", "0"], "--max_train_examples=0"),
    (["--epochs", "x"], "--epochs=x"),
    (["stray"], "unexpected arguments: stray"),
])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert _run(class_cli, f"--output_dir={out}", *args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("binary, args, message", [
    (class_cli, ["--eval_epochs", "3,12", "--epochs", "10"], "eval epoch 12 is outside [0, 10]"),
    (class_cli, ["--dataset", "hierarchical_images", "--probe_per_class", "500"],
     "per_class=500 but class 0 has only 100"),
    (class_cli, ["--seed", "3", "--seeds", "0,1"], "--seed and --seeds: give one"),
    (class_cli, ["--seeds", "0,0"], "--seeds must be distinct"),
    (class_cli, ["--bootstrap_samples", "-1"], "--bootstrap_samples=-1"),
    (class_cli, ["--dataset", "mnist", "--synthetic_noise", "3"],
     "--synthetic_noise apply to --dataset hierarchical_images only"),
    (lr_cli, ["--learning_rates", "1e-3,0"], "--learning_rates must be comma-separated"),
    (lr_cli, ["--learning_rates", "1e-3,1e-3"], "learning_rates: expected distinct values"),
    (neighbourhoods_cli, ["--radii", "0.1,-1"], "--radii must be comma-separated"),
    (layerwise_cli, ["--hidden_widths", "8-x"], "--hidden_widths must be comma-separated"),
    (layerwise_cli, ["--activations", "relu,swish"], "--activations must be some of"),
])
def test_bad_combinations_are_refused_before_writing(tmp_path, capsys, binary, args, message):
    out = tmp_path / "run"
    assert _run(binary, f"--output_dir={out}", *args) in (1, 2)
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not out.exists()


def test_unusable_output_paths_are_refused_up_front(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for path in (a_file, a_file / "below"):
        assert _run(class_cli, f"--output_dir={path}") == 1
        err = capsys.readouterr().err
        assert "is a file, not a directory" in err and "Traceback" not in err
    if os.geteuid() != 0:  # root writes anywhere: only a read-only mount would stop it.
        locked = tmp_path / "read_only"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert _run(class_cli, f"--output_dir={locked / 'run'}") == 1
            assert "is not writable" in capsys.readouterr().err
        finally:
            locked.chmod(0o700)


# ------------------------------------------------------------------------------------------
# Each binary on small data
# ------------------------------------------------------------------------------------------


def test_cifar100_superclass_on_the_synthetic_hierarchy(tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"--output_dir={out}", "--epochs=1", "--synthetic_per_class=2",
            "--probe_per_class=2", "--eval_epochs=1"]
    assert _run(superclass_cli, *args) == 0
    stdout = capsys.readouterr().out
    # The last lines say what was written and how to look at it.
    assert f"tensorboard --logdir {out / 'tensorboard'}" in stdout.splitlines()[-1]
    assert "figures/superclass_matrix.png" in stdout.splitlines()[-2]
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
    _check_files(out, ["class_matrix", "superclass_matrix", "curves", "stiffness_vs_distance"])
    # The binaries write what the callback writes: histograms, xi_crossed, the alignment.
    tags = scalar_events(out / "tensorboard" / "stiffness")
    assert "stiffness/train_val/cosine/values" in tags
    assert [s for s, _ in tags["stiffness/train_train/cosine/xi_crossed"]] == [0, 1]
    assert "stiffness/train_train/cosine/class_matrix" in tags
    assert "stiffness/train_train/alignment/m_coherence" in tags
    assert "stiffness/train_train/cosine/xi_linear_fit_slope" in tags
    assert {"metrics/loss", "metrics/accuracy", "metrics/batch_loss"} <= set(
        scalar_events(out / "tensorboard" / "train"))
    # Same directory, other flags: one line naming the flag.
    assert _run(superclass_cli, *args, "--epochs=2") == 1
    err = capsys.readouterr().err
    assert "epochs: saved 1, now 2" in err and "Traceback" not in err


def test_class_stiffness_on_synthetic_images(tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"--output_dir={out}", "--dataset=hierarchical_images", "--epochs=2",
            "--synthetic_per_class=6", "--probe_per_class=3", "--eval_epochs=2",
            "--bootstrap_samples=20", "--quiet"]
    assert _run(class_cli, *args) == 0
    summary = _summary(out)
    _check_class_schema(summary, 10, superclasses=True)  # 5 super-classes of 2.
    assert summary["config"]["eval_epochs"] == [0, 2]
    assert summary["config"]["model"] == "fc"
    _check_files(out, ["class_matrix", "curves", "stiffness_vs_distance"])
    steps = [s for s, _ in scalar_events(out / "tensorboard" / "train")["metrics/batch_loss"]]
    assert steps == [1, 2]  # Every epoch; the full-pass loss only where measured.
    # A checkpoint damaged after the run (a copy cut short) is refused, naming the file.
    (stage,) = (out / "stages").iterdir()
    stage.write_bytes(stage.read_bytes()[:100])
    capsys.readouterr()
    assert _run(class_cli, *args) == 1
    err = capsys.readouterr().err
    assert f"stage checkpoint {stage} cannot be read" in err and "Delete it to redo" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_learning_rate_study(tmp_path):
    out = tmp_path / "run"
    assert _run(lr_cli, f"--output_dir={out}", "--dataset=gaussian_blobs", "--epochs=2",
                "--learning_rates=1e-3,3e-2", "--synthetic_per_class=12", "--probe_per_class=6",
                "--bootstrap_samples=20", "--quiet") == 0
    res = _summary(out)["results"]
    assert list(res["learning_rates"]) == ["lr=0.001", "lr=0.03"]
    assert [row["learning_rate"] for row in res["table"]] == [0.001, 0.03]
    for row in res["table"]:
        assert row["final_xi_linear_fit"]["status"] in ("fitted", "no_decay",
                                                        "nonpositive_at_zero")
        assert set(row["final_intervals"]) == {"within", "between", "xi_crossing",
                                               "xi_linear_fit", "m_coherence"}
    for entry in res["learning_rates"].values():
        assert [e["epoch"] for e in entry["epochs"]] == [0, 1, 2]
        for e in entry["epochs"]:
            assert (e["xi_crossing"]["xi"] is None) == (e["xi_crossing"]["status"] != "crossed")
            fit = e["xi_linear_fit"]
            assert (fit["extrapolated"] is None) == (fit["xi"] is None)
        assert all(len(v) == len(res["loss_levels"]) for v in entry["at_loss_levels"].values())
    # xi by both estimators per rate at equal epoch and at equal loss, also as Markdown.
    table = res["xi_table"]
    assert [row["epoch"] for row in table["at_equal_epoch"]] == [0, 1, 2]
    assert set(table["at_equal_epoch"][0]) == {"epoch", "lr=0.001", "lr=0.03"}
    assert len(table["at_equal_loss"]) == len(res["loss_levels"])
    markdown = (out / "xi_table.md").read_text()
    assert "## At equal epoch" in markdown and "## At equal training loss" in markdown
    assert "| epoch | lr=0.001 | lr=0.03 |" in markdown
    arrays = np.load(out / "results.npz")
    np.testing.assert_array_equal(arrays["learning_rates"], [1e-3, 3e-2])
    assert arrays["lr1/curve_means"].shape == (3, 20)
    runs = ["figures", "lr=0.001", "lr=0.03"]
    _check_files(out, ["by_epoch", "by_train_loss", "stiffness_vs_distance"], runs=runs)
    # One HParams session per rate, with its stiffness and training runs inside.
    assert sorted(p.name for p in (out / "tensorboard" / "lr=0.03").iterdir() if p.is_dir()) \
        == ["stiffness", "train"]


@pytest.mark.slow  # ~11 s; the mock glue/sst2 test below runs the same binary by default.
def test_text_transformer_on_synthetic_text(tmp_path):
    out = tmp_path / "run"
    assert _run(text_cli, f"--output_dir={out}", "--epochs=1", "--synthetic_per_split=20",
                "--probe_per_class=3", "--embed_dim=8", "--num_blocks=1",
                "--sequence_length=12", "--quiet") == 0
    summary = _summary(out)
    _check_class_schema(summary, 2, superclasses=False)
    assert summary["results"]["distance_space"] == "pooled"
    _check_files(out, ["class_matrix", "curves", "stiffness_vs_distance"])


def test_mnist1d_is_the_default_with_the_fc_net_and_a_conv1d_option(tmp_path):
    tiny = ["--epochs=1", "--max_train_examples=300", "--max_val_examples=300",
            "--probe_per_class=2", "--eval_epochs=1", "--bootstrap_samples=0", "--quiet"]
    assert _run(class_cli, f"--output_dir={tmp_path / 'fc'}", *tiny) == 0
    summary = _summary(tmp_path / "fc")
    assert (summary["config"]["dataset"], summary["config"]["model"]) == ("mnist1d", "fc")
    assert summary["config"]["epochs"] == 1 and summary["config"]["bootstrap_samples"] == 0
    _check_class_schema(summary, 10, superclasses=False)
    assert summary["results"]["architecture"] == "fully_connected"
    assert _run(class_cli, f"--output_dir={tmp_path / 'cnn'}", "--model=cnn", *tiny) == 0
    summary = _summary(tmp_path / "cnn")
    assert summary["results"]["architecture"] == "mnist1d_cnn"
    assert summary["results"]["parameters"] == 5210
    # The learning-rate study's default is MNIST-1D too.
    assert lr_cli.FLAGS["dataset"].default == "mnist1d"


def test_seeds_repeat_the_study_and_report_the_mean_with_an_interval(tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"--output_dir={out}", "--dataset=hierarchical_images", "--epochs=1",
            "--synthetic_per_class=6", "--probe_per_class=3", "--seeds=0,2",
            "--bootstrap_samples=0"]
    assert _run(class_cli, *args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "mean over seeds [0, 2]" in lines[-3]
    summary = _summary(out)
    results = summary["results"]
    assert summary["config"]["seeds"] == [0, 2]
    assert results["seeds"] == [0, 2] and sorted(results["per_seed"]) == ["seed=0", "seed=2"]
    # Each seed is a run of its own, with its own seed, and the summary holds it unchanged.
    for seed in (0, 2):
        own = _summary(out / f"seed={seed}")
        assert own["config"]["seed"] == seed
        assert results["per_seed"][f"seed={seed}"] == own["results"]
    within = [results["per_seed"][f"seed={s}"]["final"]["stiffness"]["train_train"]["cosine"]
              ["within"] for s in (0, 2)]
    combined = results["across_seeds"]["final"]["stiffness"]["train_train"]["cosine"]["within"]
    assert combined["values"] == within and combined["n"] == 2
    assert combined["mean"] == pytest.approx(np.mean(within))
    half = 12.706205 * np.std(within, ddof=1) / np.sqrt(2)  # Student t, 1 degree of freedom.
    assert (combined["low"], combined["high"]) == pytest.approx((np.mean(within) - half,
                                                                 np.mean(within) + half))
    assert results["across_seeds"]["final"]["epoch"] == 1  # Equal in every seed: kept.
    # Arrays stacked on a seed axis; figures with bands; TensorBoard runs per seed and mean.
    arrays = np.load(out / "results.npz")
    assert arrays["seeds"].tolist() == [0, 2]
    assert arrays["train_train/cosine/within"].shape == (2, 2)
    for name in ("curves", "class_matrix", "stiffness_vs_distance"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    runs = {p.relative_to(out / "tensorboard").parent.as_posix()
            for p in (out / "tensorboard").rglob("events.out.tfevents.*")}
    assert {"seed=0/stiffness", "seed=2/train", "mean_over_seeds/stiffness", "figures"} <= runs
    assert not (out / "seed=0" / "tensorboard").exists()
    mean_tags = scalar_events(out / "tensorboard" / "mean_over_seeds" / "stiffness")
    got = dict(mean_tags["stiffness/train_train/cosine/within"])
    assert got[1] == pytest.approx(np.mean(within), rel=1e-5)
    _assert_each_step_once(out / "tensorboard")
    # The same command again: every seed resumes finished, nothing retrained.
    assert _run(class_cli, *args, "--quiet") == 0
    assert _summary(out / "seed=2")["run"]["resumed_after_epoch"] == 1
    # Other flags on the combined directory: refused before any seed runs.
    assert _run(class_cli, *[a for a in args if a != "--seeds=0,2"], "--seeds=0,1") == 1
    err = capsys.readouterr().err
    assert "seeds: saved [0, 2], now [0, 1]" in err
    assert not (out / "seed=1").exists()


def test_bert_tiny_without_keras_hub_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_keras_hub(name, *args, **kwargs):
        if name == "keras_hub" or name.startswith("keras_hub."):
            raise ImportError("No module named 'keras_hub'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_keras_hub)
    out = tmp_path / "run"
    assert _run(text_cli, f"--output_dir={out}", "--model=bert_tiny") == 1
    err = capsys.readouterr().err
    assert "--model bert_tiny needs keras_hub" in err and "pip install keras-hub" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.slow  # ~40 s: keras_hub's BERT is traced for training and for the ghost Gram.
def test_bert_tiny_on_synthetic_text(tmp_path):
    pytest.importorskip("keras_hub")
    out = tmp_path / "run"
    assert _run(text_cli, f"--output_dir={out}", "--model=bert_tiny", "--epochs=1",
                "--synthetic_per_split=16", "--probe_per_class=3", "--sequence_length=12",
                "--eval_epochs=1", "--bootstrap_samples=0", "--quiet") == 0
    summary = _summary(out)
    _check_class_schema(summary, 2, superclasses=False)
    results = summary["results"]
    assert results["architecture"].startswith("bert_text_classifier")
    assert results["distance_space"] == "pooled" and results["gram_method"] == "ghost"
    assert summary["config"]["model_options"] == {"num_layers": 2, "num_heads": 2,
                                                  "hidden_dim": 64, "intermediate_dim": 128}
    _check_files(out, ["class_matrix", "curves", "stiffness_vs_distance"])


# ------------------------------------------------------------------------------------------
# Real data: tfds.testing.mock_data, and a missing set without network
# ------------------------------------------------------------------------------------------


@pytest.fixture
def mock_tfds():
    tfds = pytest.importorskip("tensorflow_datasets")
    return tfds.testing.mock_data


def test_class_stiffness_on_mock_mnist(tmp_path, mock_tfds):
    out = tmp_path / "run"
    with mock_tfds(num_examples=60):
        assert _run(class_cli, f"--output_dir={out}", "--dataset=mnist", "--epochs=1",
                    "--probe_per_class=1", f"--data_dir={tmp_path / 'data'}", "--quiet") == 0
    _check_class_schema(_summary(out), 10, superclasses=False)
    assert np.load(out / "results.npz")["train_val/cosine/class_matrix"].shape == (2, 10, 10)


def test_cifar100_superclass_on_mock_cifar100(tmp_path, mock_tfds):
    out = tmp_path / "run"
    # Mock labels are random: 1000 examples give every one of the 100 classes an example.
    with mock_tfds(num_examples=1000):
        assert _run(superclass_cli, f"--output_dir={out}", "--dataset=cifar100", "--epochs=1",
                    "--probe_per_class=1", "--max_train_examples=1000",
                    f"--data_dir={tmp_path / 'data'}", "--quiet") == 0
    summary = _summary(out)
    _check_class_schema(summary, 100, superclasses=True)
    assert summary["results"]["num_superclasses"] == 20


def test_text_transformer_on_mock_sst2(tmp_path, mock_tfds):
    out = tmp_path / "run"
    with mock_tfds(num_examples=40):
        assert _run(text_cli, f"--output_dir={out}", "--dataset=glue/sst2", "--epochs=1",
                    "--probe_per_class=2", "--embed_dim=8", "--num_blocks=1",
                    "--vocab_size=50", "--sequence_length=12",
                    f"--data_dir={tmp_path / 'data'}", "--quiet") == 0
    _check_class_schema(_summary(out), 2, superclasses=False)


def test_missing_data_without_network_fails_fast_then_the_corrected_command_runs(
        tmp_path, capsys, monkeypatch, mock_tfds):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("socket.create_connection", no_network)
    out, empty = tmp_path / "real", tmp_path / "empty"
    empty.mkdir()
    args = [f"--output_dir={out}", "--dataset=mnist", "--epochs=1", "--probe_per_class=1"]
    start = time.monotonic()
    assert _run(class_cli, *args, f"--data_dir={empty}") == 1
    assert time.monotonic() - start < 60  # Not 3.5 minutes of download retries.
    err = capsys.readouterr().err
    assert "'mnist' is not in --data_dir" in err and f"--data_dir {empty}" in err
    assert "tfds build mnist" in err and "no connection to" in err
    assert "Traceback" not in err and "tfds.load(" not in err
    assert not out.exists()  # Nothing written: the corrected command is not refused.
    prepared = tmp_path / "prepared"
    with mock_tfds(num_examples=40):  # The data placed in --data_dir, as the message says.
        assert _run(class_cli, *args, f"--data_dir={prepared}", "--quiet") == 0
    assert _summary(out)["config"]["data_dir"] == str(prepared)


def test_dataset_unavailable_error_names_its_parts(tmp_path, monkeypatch):
    monkeypatch.setattr("tfstiffness.data.tfds_access.unreachable_hosts",
                        lambda hosts, timeout=5.0: list(hosts))
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("cifar10", data_dir=tmp_path)
    error = info.value
    assert (error.name, error.data_dir) == ("cifar10", str(tmp_path))
    assert "www.cs.toronto.edu" in error.reason
    assert isinstance(error.__cause__, ConnectionError)


# ------------------------------------------------------------------------------------------
# Real processes: live TensorBoard, quiet stderr, the lock, SIGINT, SIGKILL and resume
# ------------------------------------------------------------------------------------------


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _command(out, *extra):
    return [sys.executable, "-m", "tfstiffness.cli.class_stiffness", f"--output_dir={out}",
            "--dataset=hierarchical_images", "--synthetic_per_class=60", "--probe_per_class=5",
            # Tiny probes: some bootstrap resamples would be undefined, and warned about.
            "--bootstrap_samples=0", *extra]


def _epochs_done(out):
    state = Path(out) / "stages" / "state.npz"
    if not state.exists():
        return -1
    try:
        with np.load(state) as arrays:
            return int(arrays["epochs_done"])
    except (OSError, ValueError, KeyError):  # Being replaced this instant.
        return -1


def _wait(condition, process, seconds=300):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, "the run ended first"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_live_tensorboard_lock_sigint_and_quiet_resume(tmp_path):
    out = tmp_path / "run"
    command = _command(out, "--epochs=40", "--eval_epochs=1,2,3,39")
    first = subprocess.Popen(command, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        # Stiffness scalars readable from the event files while the run is going on.
        stiffness = out / "tensorboard" / "stiffness"
        _wait(lambda: "stiffness/train_train/cosine/within" in (
            scalar_events(stiffness) if stiffness.exists() else {}), first)
        assert first.poll() is None
        within = scalar_events(stiffness)["stiffness/train_train/cosine/within"]
        assert within[0][0] == 0 and -1 <= within[0][1] <= 1
        # A second run on the same directory is refused, naming the first one's process.
        second = subprocess.run(command, check=False, env=_env(), cwd=tmp_path,
                                capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 1
        assert f"is in use by another run (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        # Ctrl-C: one line saying how to resume, exit status 130, the checkpoint intact.
        _wait(lambda: _epochs_done(out) >= 2, first)
        first.send_signal(signal.SIGINT)
        _stdout, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: run the same command to resume"
    assert "Traceback" not in stderr
    done = _epochs_done(out)
    assert 2 <= done < 40
    # The same command resumes; a default run's stderr is empty: no TensorFlow start-up
    # lines (C++ or Python), no retracing warnings.
    resumed = subprocess.run(command, check=False, env=_env(), cwd=tmp_path,
                             capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for noise in ("retracing", "cudart_stub", "cpu_feature_guard", "absl::InitializeLog",
                  "cuInit", "oneDNN"):
        assert noise not in resumed.stderr, (noise, resumed.stderr[-3000:])
    assert resumed.stderr.strip() == ""
    assert f"resuming after epoch {done} of 40" in resumed.stdout
    summary = _summary(out)
    assert summary["run"]["resumed_after_epoch"] == done
    assert summary["results"]["gram_method"] == "ghost"  # Also after a resume.
    lines = resumed.stdout.strip().splitlines()
    assert sum(" epoch " in line and "/40" in line for line in lines) == 40 - done
    assert lines[-1].endswith(f"tensorboard --logdir {out / 'tensorboard'}")
    _assert_each_step_once(out / "tensorboard")


def test_sigterm_exits_143_saying_terminated_and_the_run_resumes(tmp_path):
    # 128 + SIGTERM, as shells and job schedulers report a terminated process (Ctrl-C: 130).
    out = tmp_path / "run"
    command = _command(out, "--epochs=30", "--eval_epochs=30")
    first = subprocess.Popen(command, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _epochs_done(out) >= 1, first)
        first.send_signal(signal.SIGTERM)
        _stdout, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM == 143, stderr
    assert stderr.strip().splitlines()[-1] == "terminated: run the same command to resume"
    assert "Traceback" not in stderr
    done = _epochs_done(out)
    assert 1 <= done < 30
    resumed = subprocess.run(command, check=False, env=_env(), cwd=tmp_path,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming after epoch {done} of 30" in resumed.stdout
    assert _summary(out)["run"]["resumed_after_epoch"] == done


@pytest.mark.slow
def test_run_killed_mid_training_resumes_to_identical_results(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    command = ["--epochs=6", "--eval_epochs=1,3,5", "--quiet"]
    proc = subprocess.Popen(_command(killed, *command), env=_env(), cwd=tmp_path)
    _wait(lambda: _epochs_done(killed) >= 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = _epochs_done(killed)
    assert 1 <= done_at_kill < 6
    assert not (killed / "results.npz").exists()

    # The killed run's lock is recognised as stale and taken over.
    restarted = subprocess.run(_command(killed, "--epochs=6", "--eval_epochs=1,3,5"),
                               env=_env(), cwd=tmp_path, capture_output=True, text=True,
                               check=True)
    assert f"took over the lock left by a run that ended without releasing it (pid " \
           f"{proc.pid}" in restarted.stdout
    subprocess.run(_command(whole, *command), env=_env(), cwd=tmp_path, check=True)
    resumed_summary = _summary(killed)
    assert resumed_summary["run"]["resumed_after_epoch"] >= done_at_kill
    a, b = np.load(killed / "results.npz"), np.load(whole / "results.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert resumed_summary["results"] == _summary(whole)["results"]
    # TensorBoard shows each step once, and the same steps as the uninterrupted run.
    _assert_each_step_once(killed / "tensorboard")
    for run in ("stiffness", "train", "validation"):
        got, want = scalar_events(killed / "tensorboard" / run), scalar_events(whole / "tensorboard" / run)
        assert {t: [s for s, _ in p] for t, p in got.items()} == \
            {t: [s for s, _ in p] for t, p in want.items()}, run
