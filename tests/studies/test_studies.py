"""Tests of the resumable trainer, the shared runner and the paper's studies (library level)."""

import numpy as np
import pytest

from tfstiffness import models, studies, training
from tfstiffness.outputs import run_directory, study_figures
from tfstiffness.studies import progress, runner


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] + 0.3 * x[:, 1] > 0).astype("int64")


def _train(path, epochs, measure, **kwargs):
    x, y = _data()
    out = run_directory.OutputDir(path, {"test": 1}, verbose=False)
    return training.train_resumable(
        out, lambda: models.toy_mlp(4, 2, widths=(8,)), x, y, epochs=epochs,
        learning_rate=1e-2, batch_size=8, seed=3, eval_epochs=[0, 1, 3], measure=measure,
        **kwargs)


def _measure(model, epoch):
    x, y = _data()
    loss, _ = training.evaluate(model, x, y)
    return {"loss": loss, "logits": np.asarray(model(x[:5], training=False))}


class _Crash(Exception):
    pass


def test_parse_eval_epochs():
    assert training.parse_eval_epochs([3, "1", 1], 4) == [0, 1, 3, 4]
    assert training.parse_eval_epochs([], 2) == [0, 2]
    with pytest.raises(ValueError, match="outside"):
        training.parse_eval_epochs([5], 4)
    with pytest.raises(ValueError, match="integer"):
        training.parse_eval_epochs(["x"], 4)


def test_batch_order_depends_on_seed_and_epoch_only():
    a = training.batch_order(20, seed=1, epoch=2)
    np.testing.assert_array_equal(a, training.batch_order(20, seed=1, epoch=2))
    assert sorted(a.tolist()) == list(range(20))
    assert not np.array_equal(a, training.batch_order(20, seed=1, epoch=3))


def test_train_resumable_measures_and_learns(tmp_path):
    run = _train(tmp_path / "a", 3, _measure)
    assert run.eval_epochs.tolist() == [0, 1, 3]
    assert run.measurements["logits"].shape == (3, 5, 2)
    assert run.epoch_loss.shape == (3,)
    assert run.measurements["loss"][-1] < run.measurements["loss"][0]
    assert run.resumed_from == -1


def test_on_epoch_reports_each_epoch_before_its_checkpoint(tmp_path):
    seen = []

    def on_epoch(report):
        checkpointed = run_directory.OutputDir(tmp_path / "a", {"test": 1}, verbose=False)
        done = (int(checkpointed.load_stage("state")["epochs_done"])
                if checkpointed.done("state") else -1)
        seen.append((report.epoch, report.measured is not None, done))

    _train(tmp_path / "a", 3, _measure, on_epoch=on_epoch)
    assert seen == [(0, True, -1), (1, True, 0), (2, False, 1), (3, True, 2)]


def test_interrupted_training_resumes_to_identical_results(tmp_path):
    full = _train(tmp_path / "full", 3, _measure)

    def crash_in_epoch_3(model, epoch):
        if epoch == 3:
            raise _Crash
        return _measure(model, epoch)

    with pytest.raises(_Crash):
        _train(tmp_path / "cut", 3, crash_in_epoch_3)
    resumed = _train(tmp_path / "cut", 3, _measure)
    assert resumed.resumed_from == 2
    for key, value in full.measurements.items():
        np.testing.assert_array_equal(resumed.measurements[key], value, err_msg=key)
    np.testing.assert_array_equal(resumed.epoch_loss, full.epoch_loss)
    for a, b in zip(resumed.model.get_weights(), full.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A finished run reloads without training or measuring again.
    again = _train(tmp_path / "cut", 3, lambda model, epoch: pytest.fail("measured again"))
    assert again.resumed_from == 3


def test_at_loss_levels_interpolates_in_log_loss_and_never_extrapolates():
    loss = np.array([1.0, 0.1, 0.01])
    values = np.array([0.0, 1.0, np.nan])
    got = studies.at_loss_levels(loss, values, [1.0, np.sqrt(0.1), 0.05, 2.0, 0.001])
    np.testing.assert_allclose(got[:2], [0.0, 0.5])
    assert np.isnan(got[2:]).all()  # NaN end, above the start, below the end.
    # Loss going up again: the first passage counts.
    np.testing.assert_allclose(studies.at_loss_levels([1.0, 0.5, 0.8, 0.2], [0, 1, 2, 3],
                                                      [0.6]), [1 - np.log(0.6 / 0.5) / np.log(2)])


def test_common_loss_levels_lie_within_every_run():
    levels = studies.common_loss_levels([[2.0, 1.0, 0.5], [1.8, 0.1]], num=4)
    assert levels[0] == pytest.approx(1.8) and levels[-1] == pytest.approx(0.5)
    assert np.all(np.diff(levels) < 0)
    assert studies.common_loss_levels([[1.0, 0.9], [0.8, 0.7]]).size == 0


def test_validation_split_names():
    assert studies.validation_split("cifar10") == "test"
    assert studies.validation_split("hierarchical_images") == "validation"


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="model must be one of"):
        studies.build_model("mlp", (4,), 2)
    with pytest.raises(ValueError, match="vocab_size"):
        studies.build_model("transformer", (8,), 2)


def test_cifar100_superclass_refuses_data_without_superclasses(tmp_path):
    with pytest.raises(studies.StudyInputError, match="super-classes"):
        studies.run_cifar100_superclass(str(tmp_path / "run"), dataset="mnist")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": -5}, "batch_size: expected an integer >= 1, got -5"),
    ({"learning_rate": 0.0}, "learning_rate: expected a finite number > 0, got 0.0"),
    ({"learning_rate": float("nan")}, "learning_rate: expected a finite number > 0"),
    ({"epochs": 0}, "epochs: expected an integer >= 1"),
    ({"probe_per_class": 0}, "probe_per_class: expected an integer >= 1"),
    ({"bins": 0}, "bins: expected an integer >= 1"),
    ({"max_train_examples": 0}, "max_train_examples: expected an integer >= 1"),
    ({"method": "fast"}, "method: expected one of"),
    ({"eval_epochs": ["a", "b"]}, "eval_epochs: eval epoch 'a' is not an integer"),
    ({"eval_epochs": [21]}, "eval_epochs: eval epoch 21 is outside"),
    ({"dataset": "nosuch"}, "nosuch: name: unknown data set"),
    ({"probe_per_class": 500}, "per_class=500 but class 0 has only"),
    ({"model": "resnet20", "dataset": "gaussian_blobs"}, "resnet20 needs images"),
    ({"model": "cnn", "dataset": "gaussian_blobs", "data_options": {"dim": 2}},
     "input_length must be at least 7"),
    ({"bootstrap_samples": -1}, "bootstrap_samples: expected an integer >= 0"),
    ({"seeds": [0, 0]}, "seeds: expected distinct values"),
    ({"seeds": []}, "seeds: expected at least one seed"),
])
def test_bad_study_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(studies.StudyInputError) as info:
        studies.run_class_stiffness(str(tmp_path / "run"), verbose=False, **kwargs)
    assert message in str(info.value)
    assert not (tmp_path / "run").exists()


def test_eta_model_prices_measured_and_unmeasured_epochs_apart():
    # Epochs cost 1 s to train; a measurement 4 s; the first of each pays 3 s of tracing.
    eta = progress.EtaModel({"a": (6, [0, 3, 6]), "b": (6, [0, 3, 6])}, final_figures=2)
    eta.record("a", 0, 0.0, 7.0, images=2, image_seconds=1.0)
    eta.record("a", 1, 4.0, 0.0)
    eta.record("a", 2, 1.0, 0.0)
    eta.record("a", 3, 1.0, 4.0, images=2, image_seconds=1.0)
    # Left: a: 3 epochs, 1 measurement; b: 6 epochs + 3 s tracing, 3 measurements + 3 s;
    # 2 final figures at 0.5 s.
    assert eta.remaining() == pytest.approx(3 * 1 + 4 + (6 * 1 + 3) + (3 * 4 + 3) + 2 * 0.5)
    # A resumed run reports from a later epoch: the skipped ones are not counted as left.
    resumed = progress.EtaModel({"": (10, [0, 5, 8])})
    resumed.record("", 6, 2.0, 0.0)  # Resumed after epoch 5: tracing again.
    resumed.record("", 7, 1.0, 0.0)
    resumed.record("", 8, 1.0, 2.0)
    assert resumed.remaining() == pytest.approx(2 * 1.0)  # Epochs 9 and 10.


def test_curves_figure_has_distinct_pairing_styles_and_a_log_loss_panel():
    epochs = np.array([0, 1, 2, 4])
    m = {"train_loss": np.array([8.0, 1.0, 0.5, 0.1]), "val_loss": np.array([8, 2, 1.5, 1.4]),
         "train_accuracy": np.array([0.1, 0.5, 0.8, 1.0]),
         "val_accuracy": np.array([0.1, 0.4, 0.5, 0.5])}
    for pair in runner.PAIRS:
        for kind in runner.KINDS:
            for stat in ("within", "between", "superclass_contrast"):
                m[f"{pair}/{kind}/{stat}"] = np.linspace(-0.1, 0.2, 4)
    fig = study_figures.curves_figure(epochs, m, np.array([5.0, 0.9, 0.6, 0.3]), title="t")
    legend = fig.legends[0]
    styles = {text.get_text(): line.get_linestyle()
              for text, line in zip(legend.get_texts(), legend.legend_handles)}
    assert styles["train-train pairs"] == "-" and styles["train-val pairs"] == "--"
    assert styles["val-val pairs"] == ":"
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert axes["Loss"].get_yscale() == "log" and axes["Loss"].get_ylabel()
    assert axes["Accuracy (full passes)"].get_ylabel() == "accuracy"
    assert len(fig.axes) == 6  # Two stiffness, loss, accuracy, two super-class contrast.
    assert max(fig.get_size_inches() * 150) < 2000  # Panels large enough to read.


def test_class_study_outputs_agree_with_measures(tmp_path):
    """The stored class matrices are those of `measures` on the stored probes."""
    import keras

    from tfstiffness import data, gradient_gram, measures

    summary = studies.run_class_stiffness(
        str(tmp_path), dataset="gaussian_blobs", epochs=1, probe_per_class=4, verbose=False,
        data_options={"num_per_class": 8, "dim": 5})
    res = np.load(tmp_path / "results.npz")
    assert res["train_train/cosine/class_matrix"].shape == (2, 3, 3)
    assert res["gram_method"].tolist() == ["ghost", "ghost"]
    assert res["train_val/sign/class_matrix"].shape == (2, 3, 3)
    # Recompute epoch 0 (the initial weights are seeded) with the library directly.
    train = data.load("gaussian_blobs", "train", num_per_class=8, dim=5)
    np.testing.assert_array_equal(res["train_probe_labels"], train.y[res["train_probe_indices"]])
    keras.utils.set_random_seed(0)
    model = studies.build_model("fc", (5,), 3)
    idx = res["train_probe_indices"]
    gram = gradient_gram(model, train.x[idx], train.y[idx],
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    C = measures.class_stiffness(measures.stiffness_matrix(gram), train.y[idx])
    np.testing.assert_allclose(res["train_train/cosine/class_matrix"][0], C, atol=1e-6)
    within = summary["results"]["epochs"][0]["stiffness"]["train_train"]["cosine"]["within"]
    assert within == pytest.approx(measures.within_between(C)[0], abs=1e-6)
    # The progress lines and summary.json name the two training losses apart.
    assert "inference mode" in summary["results"]["losses"]


def test_a_resumed_study_records_its_gram_method(tmp_path):
    kwargs = {"dataset": "gaussian_blobs", "epochs": 2, "probe_per_class": 3,
              "data_options": {"num_per_class": 6}, "verbose": False}
    studies.run_class_stiffness(str(tmp_path), **kwargs)
    (tmp_path / "summary.json").unlink()
    # Every epoch checkpointed: the rerun measures nothing, yet knows the method.
    again = studies.run_class_stiffness(str(tmp_path), **kwargs)
    assert again["run"]["resumed_after_epoch"] == 2
    assert again["results"]["gram_method"] == "ghost"


def test_a_damaged_or_foreign_training_state_is_refused_in_one_line(tmp_path):
    from tfstiffness.errors import ConfigMismatchError, CorruptFileError

    x, y = _data()
    path = tmp_path / "a"
    _train(path, 3, _measure)
    state = path / "stages" / "state.npz"

    def train(widths=(8,), eval_epochs=(0, 1, 3), where=path):
        out = run_directory.OutputDir(where, {"test": 1}, verbose=False)
        try:
            return training.train_resumable(
                out, lambda: models.toy_mlp(4, 2, widths=widths), x, y, epochs=3,
                learning_rate=1e-2, batch_size=8, seed=3, eval_epochs=eval_epochs,
                measure=_measure)
        finally:
            out.close()

    with pytest.raises(ConfigMismatchError, match=(
            r"stage checkpoint .*state.npz lacks measurements of epochs \[2\]: it was made with "
            r"other eval_epochs. Delete it to train again")):
        train(eval_epochs=(0, 2, 3))
    good = dict(np.load(state))
    # Another model's state, and a foreign file, without records (as older versions wrote):
    # trusted by the matching config.json, then refused when they do not fit.
    train(widths=(16,), where=tmp_path / "wide")
    wide = dict(np.load(tmp_path / "wide" / "stages" / "state.npz"))
    wide.pop("_made_by")
    run_directory.write_npz(state, **wide)
    with pytest.raises(CorruptFileError, match=(
            r"stage checkpoint .*state.npz is not this run's training state \(ValueError: .*\); "
            r"it was written by another study or model. Delete it to train again")) as info:
        train()
    assert "\n" not in str(info.value)
    run_directory.write_npz(state, w=np.arange(3))
    with pytest.raises(CorruptFileError, match=r"is not this run's training state \(no entry "
                                               r"'epochs_done'\)"):
        train()
    run_directory.write_npz(state, **good)
    assert train().eval_epochs.tolist() == [0, 1, 3]  # its own state resumes
