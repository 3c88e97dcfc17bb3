"""The TracIn influence study and its binary: files, numbers against a brute-force sum over
the checkpoints it wrote, resume, given checkpoints, and refusals before anything is written."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.support import REPO_ROOT
from tests.support.bruteforce import per_example_gradients, relative_error
from tests.support.events import scalar_events
from tfstiffness import data
from tfstiffness.cli import influence as influence_cli
from tfstiffness.influence.label_noise import flip_labels
from tfstiffness.measures.neighbourhood import roc_auc
from tfstiffness.studies import StudyInputError
from tfstiffness.studies import influence as study

REPO = REPO_ROOT
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# Small and fast: 120 MNIST-1D signals (12 labels flipped), 2 epochs, 12 test examples.
SMALL = {"dataset": "mnist1d", "model": "mlp", "epochs": 2, "learning_rate": 0.01,
         "num_test": 12, "top_k": 4, "flip_labels": 0.1, "max_train_examples": 120,
         "verbose": False}
FIGURES = {"proponents_opponents_000-009", "proponents_opponents_010-011",
           "highest_self_influence", "flipped_label_detection"}


def _gradients(model, x, y):
    return np.concatenate(list(per_example_gradients(model, LOSS, x, y).values()), axis=1)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("influence") / "run"
    return out, study.run_influence(str(out), **SMALL)


def test_study_writes_every_file_and_numbers_equal_brute_force(small_run):
    out, summary = small_run
    assert set(summary) == {"config", "versions", "results", "run"}
    results, arrays = summary["results"], np.load(out / "results.npz")
    # Files: checkpoints of each epoch, figures, TensorBoard runs with each step once.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "epoch_001.weights.h5", "epoch_002.weights.h5"]
    assert {p.stem for p in (out / "figures").iterdir()} == FIGURES
    assert all((out / "figures" / f"{name}.png").stat().st_size > 1000 for name in FIGURES)
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == [
        "figures", "influence", "test", "train"]
    train_events = scalar_events(out / "tensorboard" / "train")
    assert [s for s, _ in train_events["metrics/loss"]] == [1, 2]
    assert {"metrics/batch_loss", "metrics/accuracy", "metrics/clean_accuracy"} <= set(
        train_events)
    influence_events = scalar_events(out / "tensorboard" / "influence")
    flips = results["flipped_labels"]
    assert influence_events["influence/self_influence_auc"] == [
        (2, pytest.approx(flips["self_influence_auc"], rel=1e-6))]
    figure_tags = set(scalar_events(out / "tensorboard" / "figures"))
    assert figure_tags == {f"figures/{name}" for name in FIGURES}
    assert not list(out.rglob(".*.tmp"))

    # The labels trained on: 10 % flipped by the seed.
    train = data.load("mnist1d", "train", max_examples=120)
    labels, flipped = flip_labels(train.y, 0.1, 10, seed=0)
    np.testing.assert_array_equal(arrays["labels"], labels)
    np.testing.assert_array_equal(arrays["flipped"], flipped)
    assert flips["count"] == 12 and results["train_examples"] == 120

    # TracIn against per-example tape.gradient summed over the checkpoint files written.
    test = data.load("mnist1d", "test")
    index = arrays["test_indices"]
    assert len(set(index.tolist())) == 12
    x_test, y_test = test.x[index], test.y[index]
    model = study.build_model("mlp", (40,), 10)
    scores, self_influence = 0.0, 0.0
    for epoch in (1, 2):
        model.load_weights(out / "checkpoints" / f"epoch_{epoch:03d}.weights.h5")
        g, h = _gradients(model, train.x, labels), _gradients(model, x_test, y_test)
        scores = scores + 0.01 * g @ h.T
        self_influence = self_influence + 0.01 * (g * g).sum(1)
    assert relative_error(arrays["scores"], scores) <= 1e-5
    assert relative_error(arrays["self_influence"], self_influence) <= 1e-5
    np.testing.assert_array_equal(arrays["learning_rates"], [0.01, 0.01])
    # Top-k: the argsort of the scores; the ranking: of the self-influence.
    for j in range(12):
        order = np.lexsort((np.arange(120), -arrays["scores"][:, j]))
        np.testing.assert_array_equal(arrays["proponents"][j], order[:4])
    np.testing.assert_array_equal(arrays["self_influence_ranking"],
                                  np.argsort(-arrays["self_influence"], kind="stable"))
    # The final loss is the last checkpoint's (loaded last above) per-example loss.
    logits = model(train.x, training=False)
    final_loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    assert relative_error(arrays["final_loss"], np.asarray(final_loss)) <= 1e-5
    assert flips["self_influence_auc"] == pytest.approx(roc_auc(self_influence, flipped),
                                                        abs=1e-9)
    assert flips["final_loss_auc"] == pytest.approx(roc_auc(final_loss, flipped), abs=1e-9)
    same = np.mean(labels[arrays["proponents"]] == y_test[:, None])
    assert results["proponents"]["same_label_share"] == pytest.approx(same)
    assert results["checkpoints"] == 2 and results["gram_method"] == "ghost"


def test_given_checkpoints_give_the_same_scores(small_run, tmp_path):
    out, _ = small_run
    paths = [str(out / "checkpoints" / f"epoch_{e:03d}.weights.h5") for e in (1, 2)]
    given = study.run_influence(
        str(tmp_path / "given"), **{**SMALL, "epochs": 1}, checkpoints=paths,
        checkpoint_learning_rates=[0.01, 0.01])
    a, b = np.load(out / "results.npz"), np.load(tmp_path / "given" / "results.npz")
    for key in ("scores", "self_influence", "proponents", "opponents", "final_loss"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-6, err_msg=key)
    assert given["run"]["trained"] is False
    assert given["results"]["flipped_labels"]["count"] == 12
    assert not (tmp_path / "given" / "checkpoints").exists()

    # A .keras file, compiled: its own loss is used; labels are flipped only when asked.
    model = study.build_model("mlp", (40,), 10)
    model.load_weights(paths[-1])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "final.keras")
    defaults = {k: v for k, v in SMALL.items() if k != "flip_labels"}
    clean = study.run_influence(str(tmp_path / "clean"), **defaults,
                                checkpoints=[str(tmp_path / "final.keras")])
    assert clean["config"]["flip_labels"] == 0.0 and "flipped_labels" not in clean["results"]
    assert "flipped_label_detection" not in clean["run"]["figures"]
    assert clean["results"]["checkpoints"] == 1
    arrays = np.load(tmp_path / "clean" / "results.npz")
    train = data.load("mnist1d", "train", max_examples=120)
    np.testing.assert_array_equal(arrays["labels"], train.y)
    g = _gradients(model, train.x, train.y)
    assert relative_error(arrays["self_influence"], (g * g).sum(1)) <= 1e-5  # eta 1


def test_a_replaced_checkpoint_file_is_refused_naming_it_then_recomputed(small_run, tmp_path,
                                                                         capsys):
    import shutil

    from tfstiffness.outputs.stage_record import file_digest

    out, _ = small_run
    given = tmp_path / "given"
    given.mkdir()
    for name, epoch in (("a", 1), ("b", 2)):
        shutil.copy(out / "checkpoints" / f"epoch_{epoch:03d}.weights.h5",
                    given / f"{name}.weights.h5")
    paths = [str(given / "a.weights.h5"), str(given / "b.weights.h5")]
    flags = ["--dataset", "mnist1d", "--model", "mlp", "--num_test", "12", "--top_k", "4",
             "--max_train_examples", "120", "--quiet", "--checkpoints", ",".join(paths)]
    run_dir = tmp_path / "run"
    assert _run("--output_dir", str(run_dir), *flags) == 0
    old = file_digest(paths[1])
    shutil.copy(paths[0], paths[1])  # b's contents replaced (by a's), same path
    new = file_digest(paths[1])
    assert old != new
    capsys.readouterr()
    assert _run("--output_dir", str(run_dir), *flags) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (f"stage checkpoint {run_dir / 'stages' / 'tracin.npz'} was made by other settings "
            f"or inputs than this run's (checkpoint 2 ({paths[1]}) contents: stage digest "
            f"{old}, now {new}); resuming it would mix two runs' numbers. Delete") in err
    (run_dir / "stages" / "tracin.npz").unlink()  # as the message advises
    assert _run("--output_dir", str(run_dir), *flags) == 0
    assert _run("--output_dir", str(tmp_path / "fresh"), *flags) == 0
    with np.load(run_dir / "results.npz") as a, np.load(tmp_path / "fresh" / "results.npz") as f:
        for key in ("scores", "self_influence"):
            np.testing.assert_array_equal(a[key], f[key], err_msg=key)
    # Against the two checkpoints' gradients by brute force: b now holds a's weights.
    model = study.build_model("mlp", (40,), 10)
    model.load_weights(paths[0])
    train = data.load("mnist1d", "train", max_examples=120)
    with np.load(run_dir / "results.npz") as a:
        g = _gradients(model, train.x, a["labels"])
        assert relative_error(a["self_influence"], 2 * (g * g).sum(1)) <= 1e-5


class _Crash(Exception):
    pass


@pytest.mark.slow  # ~8 s: three runs.
def test_a_run_interrupted_in_training_resumes_to_the_same_results(small_run, tmp_path,
                                                                   monkeypatch):
    out, summary = small_run
    save = study._save_weights

    def crash_at_epoch_2(model, path):
        if path.name == "epoch_002.weights.h5":
            raise _Crash
        save(model, path)

    monkeypatch.setattr(study, "_save_weights", crash_at_epoch_2)
    with pytest.raises(_Crash):
        study.run_influence(str(tmp_path / "cut"), **SMALL)
    assert not (tmp_path / "cut" / "results.npz").exists()
    monkeypatch.setattr(study, "_save_weights", save)
    resumed = study.run_influence(str(tmp_path / "cut"), **SMALL)
    a, b = np.load(out / "results.npz"), np.load(tmp_path / "cut" / "results.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)
    assert resumed["results"] == summary["results"]
    # Finished: a rerun reads the TracIn stage back and writes the same results.
    again = study.run_influence(str(tmp_path / "cut"), **SMALL)
    assert again["results"] == summary["results"]


@pytest.mark.parametrize("kwargs, message", [
    ({"flip_labels": 1.5}, r"flip_labels: expected a share in \[0, 1\), got 1.5"),
    ({"top_k": 0}, "top_k: expected an integer >= 1, got 0"),
    ({"top_k": 121}, "top_k: expected at most the 120 training examples, got 121"),
    ({"num_test": 1001}, "num_test: expected an integer >= 1 and <= 1000, got 1001"),
    ({"kind": "sign"}, "kind: expected one of"),
    ({"model": "resnet"}, "model: expected one of"),
    ({"model": "mnist1d_cnn", "dataset": "hierarchical_images"},
     "--model mnist1d_cnn on hierarchical_images: mnist1d_cnn needs 1-D signals"),
    ({"checkpoints": ["missing.keras"]}, r"checkpoints\[0\]: no such file 'missing.keras'"),
    ({"checkpoints": ["weights.npz"]}, r"checkpoints\[0\]: expected a path ending in .keras"),
    ({"checkpoint_learning_rates": [1.0]}, "checkpoint_learning_rates: given without"),
    ({"learning_rate": 0.0}, "learning_rate: expected a finite number > 0"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    out = tmp_path / "run"
    with pytest.raises(StudyInputError, match=message):
        study.run_influence(str(out), **{**SMALL, **kwargs})
    assert not out.exists()


def test_unusable_checkpoints_are_refused_before_writing(small_run, tmp_path):
    out, _ = small_run
    paths = [str(out / "checkpoints" / "epoch_001.weights.h5")]
    cases = [
        ({"model": "mnist1d_cnn", "checkpoints": paths}, "could not load"),
        ({"checkpoints": paths, "checkpoint_learning_rates": [1.0, 2.0]},
         r"learning_rates: expected one per checkpoint \(1\), got 2"),
    ]
    three_classes = keras.Sequential([keras.Input((40,)), keras.layers.Dense(3)])
    three_classes.save(tmp_path / "three.keras")
    cases.append(({"checkpoints": [str(tmp_path / "three.keras")]},
                  r"outputs of shape \(2, 3\) for two mnist1d examples; expected \(2, 10\)"))
    for kwargs, message in cases:
        with pytest.raises(StudyInputError, match=message):
            study.run_influence(str(tmp_path / "run"), **{**SMALL, **kwargs})
        assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# The binary
# ------------------------------------------------------------------------------------------


def _run(*args):
    with pytest.raises(SystemExit) as info:
        influence_cli.run(["influence", *args])
    return info.value.code or 0


@pytest.mark.parametrize("args, status, message", [
    (["--flip_labels", "1.5"], 2, "--flip_labels must be a share in [0, 1)"),
    (["--flip_labels", "nan"], 2, "--flip_labels must be a share in [0, 1)"),
    (["--top_k", "0"], 2, "flag --top_k=0"),
    (["--num_test", "0"], 2, "flag --num_test=0"),
    (["--checkpoints", "missing.keras"], 1, "checkpoints[0]: no such file 'missing.keras'"),
    (["--checkpoint_learning_rates", "1,-2"], 2,
     "--checkpoint_learning_rates must be comma-separated finite numbers >= 0"),
    (["--model", "mnist1d_cnn", "--dataset", "hierarchical_images"], 1,
     "--model mnist1d_cnn on hierarchical_images: mnist1d_cnn needs 1-D signals"),
])
def test_binary_refuses_hostile_flags_before_writing(tmp_path, capsys, args, status, message):
    out = tmp_path / "run"
    assert _run(f"--output_dir={out}", *args) == status
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not out.exists()


def test_binary_help_lists_its_own_flags(capsys):
    assert _run("--help") == 0
    text = capsys.readouterr().out
    for flag in ("num_test", "top_k", "flip_labels", "checkpoints", "kind", "model"):
        assert f"  --{flag}\n" in text, flag
    assert "probe_per_class" not in text and "eval_epochs" not in text
    assert "Example:" in text and "tfstiffness.cli.influence" in text


@pytest.mark.slow  # ~14 s: TensorFlow's import and a run in a fresh process.
def test_binary_in_a_subprocess(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="0")
    command = [sys.executable, "-m", "tfstiffness.cli.influence", f"--output_dir={out}",
               "--max_train_examples=200", "--epochs=2", "--num_test=5", "--top_k=3",
               "--flip_labels=0.1", "--seed=1"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.strip() == "", done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert "flipped labels (20): self-influence AUC" in done.stdout
    assert lines[-1].endswith(f"tensorboard --logdir {out / 'tensorboard'}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["seed"] == 1 and summary["results"]["test_probe"] == 5
    assert (out / "figures" / "proponents_opponents_000-004.png").is_file()
