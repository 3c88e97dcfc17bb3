"""TracIn scores against a brute-force sum over checkpoints of per-example tape.gradient."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import per_example_gradients, relative_error
from tfstiffness.influence import TracInAccumulator
from tfstiffness.influence.tracin import _TopK

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
ETAS = [0.5, 1.0, 2.0]
N, M = 23, 7


def _mlp(seed: int, batch_norm: bool = False) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((5,)), keras.layers.Dense(8, activation="tanh")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    return keras.Sequential(layers + [keras.layers.Dense(3)])


def _data(n=N, m=M):
    rng = np.random.default_rng(1)
    x, xt = rng.normal(size=(n, 5)).astype("float32"), rng.normal(size=(m, 5)).astype("float32")
    return x, rng.integers(0, 3, n), xt, rng.integers(0, 3, m)


@pytest.fixture(scope="module")
def checkpoints():
    return [_mlp(seed) for seed in range(3)]


_GRADIENTS: dict = {}  # brute force is the slow part: each (checkpoint, set) once


def _gradients(model, x, y) -> np.ndarray:
    key = (id(model), x.tobytes(), y.tobytes())
    if key not in _GRADIENTS:
        _GRADIENTS[key] = (model, np.concatenate(
            list(per_example_gradients(model, LOSS, x, y).values()), axis=1))
    return _GRADIENTS[key][1]


def _reference(checkpoints, etas, x, y, xt, yt, kind):
    """(scores [N, M], train self-influence, test self-influence), float64, by brute force."""
    scores, self_train, self_test = 0.0, 0.0, 0.0
    for model, eta in zip(checkpoints, etas):
        g, h = _gradients(model, x, y), _gradients(model, xt, yt)
        gram = g @ h.T
        if kind == "cosine":
            gram = gram / np.outer(np.linalg.norm(g, axis=1), np.linalg.norm(h, axis=1))
        scores = scores + eta * gram
        self_train = self_train + eta * (g * g).sum(1)
        self_test = self_test + eta * (h * h).sum(1)
    return scores, self_train, self_test


def _argsort(scores: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """[M, k] training indices per test example; ties by lower index."""
    index = np.arange(len(scores))
    return np.stack([np.lexsort((index, -col if largest else col))[:k] for col in scores.T])


@pytest.mark.parametrize("kind", ["dot", "cosine"])
def test_scores_equal_brute_force(checkpoints, kind):
    x, y, xt, yt = _data()
    result = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=ETAS, kind=kind)
    scores, self_train, self_test = _reference(checkpoints, ETAS, x, y, xt, yt, kind)
    assert result.scores.shape == (N, M) and result.proponents is None
    assert relative_error(result.scores, scores) <= 1e-5
    assert relative_error(result.self_influence, self_train) <= 1e-5
    assert relative_error(result.test_self_influence, self_test) <= 1e-5
    np.testing.assert_array_equal(result.learning_rates, ETAS)


@pytest.mark.parametrize("kind", ["dot", "cosine"])
def test_streamed_top_k_equals_argsort_of_full_matrix(checkpoints, kind):
    x, y, xt, yt = _data()
    k, block = 5, 4  # 23 training examples: 6 blocks
    dense = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=ETAS, kind=kind,
                       block_size=block)
    top = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=ETAS, kind=kind,
                     block_size=block, top_k=k)
    assert top.scores is None and top.proponents.shape == (M, k)
    # Same blocks, same summation order: the streamed ranking is the full matrix's argsort.
    np.testing.assert_array_equal(top.proponents, _argsort(dense.scores, k, largest=True))
    np.testing.assert_array_equal(top.opponents, _argsort(dense.scores, k, largest=False))
    # And its scores are the brute-force scores, sorted.
    reference = np.sort(_reference(checkpoints, ETAS, x, y, xt, yt, kind)[0], axis=0).T
    assert relative_error(top.proponent_scores, reference[:, ::-1][:, :k]) <= 1e-5
    assert relative_error(top.opponent_scores, reference[:, :k]) <= 1e-5
    np.testing.assert_array_equal(np.take_along_axis(dense.scores.T, top.proponents, 1),
                                  top.proponent_scores)
    assert relative_error(top.self_influence, dense.self_influence) <= 1e-6
    for a, b in zip(dense.top(k), top.top(k)):  # the same ranking from the full matrix
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(top.top(2)[0], top.proponents[:, :2])


def test_top_k_of_all_examples_and_of_one():
    checkpoints = [_mlp(seed) for seed in (3, 4)]
    x, y, xt, yt = _data()
    full = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, block_size=8)
    every = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, block_size=8, top_k=N)
    np.testing.assert_array_equal(every.proponents, _argsort(full.scores, N, largest=True))
    np.testing.assert_array_equal(every.opponents, every.proponents[:, ::-1])
    one = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, block_size=8, top_k=1)
    np.testing.assert_array_equal(one.proponents[:, 0], full.scores.argmax(0))


def test_top_k_ties_go_to_the_lower_index_across_blocks():
    top = _TopK(m=2, k=3)
    top.merge(slice(0, 3), np.array([[1.0, 5.0], [2.0, 5.0], [1.0, 0.0]]))
    top.merge(slice(3, 5), np.array([[2.0, 5.0], [1.0, -1.0]]))
    np.testing.assert_array_equal(top.best_index, [[1, 3, 0], [0, 1, 3]])
    np.testing.assert_array_equal(top.best, [[2.0, 2.0, 1.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(top.worst_index, [[0, 2, 4], [4, 2, 0]])
    np.testing.assert_array_equal(top.worst, [[1.0, 1.0, 1.0], [-1.0, 0.0, 5.0]])


def test_learning_rates_scale_each_checkpoint(checkpoints):
    x, y, xt, yt = _data()
    first = tfs.tracin(checkpoints[:1], x, y, xt, yt, loss=LOSS)
    second = tfs.tracin(checkpoints[1:2], x, y, xt, yt, loss=LOSS)
    both = tfs.tracin(checkpoints[:2], x, y, xt, yt, loss=LOSS, learning_rates=[3.0, 0.0])
    assert relative_error(both.scores, 3.0 * first.scores) <= 1e-6
    default = tfs.tracin(checkpoints[:2], x, y, xt, yt, loss=LOSS)
    assert relative_error(default.scores, first.scores + second.scores) <= 1e-6


def test_checkpoints_as_keras_and_weights_files(checkpoints, tmp_path):
    x, y, xt, yt = _data()
    from_models = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=ETAS)
    keras_files, weight_files = [], []
    for i, model in enumerate(checkpoints):
        keras_files.append(str(tmp_path / f"ckpt{i}.keras"))
        model.save(keras_files[-1])
        weight_files.append(tmp_path / f"ckpt{i}.weights.h5")
        model.save_weights(weight_files[-1])
    from_keras = tfs.tracin(keras_files, x, y, xt, yt, loss=LOSS, learning_rates=ETAS)
    assert relative_error(from_keras.scores, from_models.scores) <= 1e-6

    user_model = _mlp(seed=9)
    before = user_model.get_weights()
    from_weights = tfs.tracin(weight_files, x, y, xt, yt, loss=LOSS, learning_rates=ETAS,
                              model=user_model, top_k=3)
    reference = np.sort(from_models.scores, axis=0)[::-1][:3].T
    assert relative_error(from_weights.proponent_scores, reference) <= 1e-6
    for w, b in zip(user_model.get_weights(), before):  # the user's model is left as it was
        np.testing.assert_array_equal(w, b)


def test_checkpoint_models_are_left_unchanged(checkpoints):
    x, y, xt, yt = _data()
    before = [m.get_weights() for m in checkpoints]
    tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, top_k=2)
    tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS)
    for model, weights in zip(checkpoints, before):
        for w, b in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(w, b)


def test_non_trainable_state_of_each_checkpoint_is_used():
    # BatchNormalization's moving statistics differ between checkpoints: they must be swapped
    # in with the trainable weights.
    x, y, xt, yt = _data()
    checkpoints = [_mlp(seed, batch_norm=True) for seed in (5, 6)]
    rng = np.random.default_rng(3)
    for model in checkpoints:  # as if trained: moving statistics away from 0 / 1
        norm = model.layers[1]
        norm.moving_mean.assign(rng.normal(size=8).astype("float32"))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype("float32"))
    result = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=[1.0, 0.3])
    scores = _reference(checkpoints, [1.0, 0.3], x, y, xt, yt, "dot")[0]
    assert relative_error(result.scores, scores) <= 1e-5


@pytest.mark.parametrize("method", ["vmap", "jacobian"])
def test_generic_methods(checkpoints, method):
    x, y, xt, yt = _data(n=9, m=4)
    result = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=ETAS,
                        method=method, top_k=2, block_size=4)
    reference = np.sort(_reference(checkpoints, ETAS, x, y, xt, yt, "dot")[0], axis=0).T
    assert result.method == method
    assert relative_error(result.opponent_scores, reference[:, :2]) <= 1e-5


def test_conv_model_with_compiled_loss():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 8, 8, 2)).astype("float32"), rng.integers(0, 3, 10)
    xt, yt = x[:3] + 0.1, y[:3]
    checkpoints = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3),
                                  keras.layers.Flatten(), keras.layers.Dense(3)])
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        checkpoints.append(model)
    result = tfs.tracin(checkpoints, x, y, xt, yt, kind="cosine", block_size=4)
    scores = _reference(checkpoints, [1.0, 1.0], x, y, xt, yt, "cosine")[0]
    assert relative_error(result.scores, scores) <= 1e-5


def test_accumulator_one_checkpoint_at_a_time_equals_tracin(checkpoints):
    x, y, xt, yt = _data()
    expected = tfs.tracin(checkpoints, x, y, xt, yt, loss=LOSS, learning_rates=ETAS)
    working = _mlp(seed=0)
    running = TracInAccumulator(x, y, xt, yt, loss=LOSS)
    streamed = TracInAccumulator(x, y, xt, yt, loss=LOSS, top_k=4, block_size=5)
    for model, eta in zip(checkpoints, ETAS):
        working.set_weights(model.get_weights())  # as a callback sees one model change
        running.add(working, eta)
        streamed.add(working, eta)
    assert running.num_checkpoints == 3
    assert relative_error(running.result().scores, expected.scores) <= 1e-6
    top = streamed.result()
    assert relative_error(top.proponent_scores,
                          np.sort(expected.scores, axis=0)[::-1][:4].T) <= 1e-6
    for w, b in zip(working.get_weights(), checkpoints[-1].get_weights()):
        np.testing.assert_array_equal(w, b)  # restored to the weights it had


def test_self_influence_only(checkpoints):
    x, y, xt, yt = _data()
    result = tfs.tracin(checkpoints, x, y, loss=LOSS, learning_rates=ETAS, block_size=6)
    assert result.scores is None and result.test_self_influence is None
    self_train = _reference(checkpoints, ETAS, x, y, xt, yt, "dot")[1]
    assert relative_error(result.self_influence, self_train) <= 1e-5
    ranking = result.self_influence_ranking()
    assert np.all(np.diff(result.self_influence[ranking]) <= 0)


# ----------------------------------------------------------------------------- hostile


def _refused(match, error=ValueError, **kwargs):
    x, y, xt, yt = _data()
    args = {"checkpoints": [_mlp(0), _mlp(1)], "x": x, "y": y, "x_test": xt, "y_test": yt,
            "loss": LOSS}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tfs.tracin(**args)


def test_refuses_bad_checkpoint_lists(tmp_path):
    _refused(r"checkpoints: expected at least one", checkpoints=[])
    _refused(r"checkpoints: expected a list", TypeError, checkpoints=_mlp(0))
    _refused(r"checkpoints: expected a list", TypeError, checkpoints="a.keras")
    _refused(r"checkpoints\[1\]: expected a Keras model or a path", TypeError,
             checkpoints=[_mlp(0), 3])
    _refused(r"checkpoints\[0\]: expected a path ending in \.keras or \.weights\.h5",
             checkpoints=[str(tmp_path / "a.h5")])
    _refused(r"checkpoints\[0\]: no such file", checkpoints=[str(tmp_path / "a.keras")])
    path = tmp_path / "a.weights.h5"
    _mlp(0).save_weights(path)
    _refused(r"model: needed to load checkpoints\[0\]", checkpoints=[path])
    wide = keras.Sequential([keras.Input((5,)), keras.layers.Dense(9), keras.layers.Dense(3)])
    _refused(r"checkpoints\[0\]: could not load .* into model", checkpoints=[path], model=wide)


def test_refuses_checkpoints_of_different_architectures():
    wide = keras.Sequential([keras.Input((5,)), keras.layers.Dense(9, activation="tanh"),
                             keras.layers.Dense(3)])
    _refused(r"checkpoints\[1\]: architecture differs from checkpoints\[0\]'s.*\(5, 9\)",
             checkpoints=[_mlp(0), wide])
    deeper = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8), keras.layers.Dense(3),
                               keras.layers.Dense(3)])
    _refused(r"checkpoints\[1\]: architecture differs", checkpoints=[_mlp(0), deeper])
    _refused(r"checkpoints\[0\]: architecture differs from model's",
             checkpoints=[wide], model=_mlp(0))


def test_refuses_non_finite_weights():
    broken = _mlp(1)
    broken.layers[0].kernel.assign(np.full((5, 8), np.nan, "float32"))
    _refused(r"checkpoints\[1\]: weight .*kernel.* contains NaN or inf",
             checkpoints=[_mlp(0), broken])


def test_refuses_bad_learning_rates():
    _refused(r"learning_rates: expected one per checkpoint \(2\), got 3",
             learning_rates=[1.0, 1.0, 1.0])
    _refused(r"learning_rates\[1\]: expected a finite number >= 0, got nan",
             learning_rates=[1.0, float("nan")])
    _refused(r"learning_rates\[0\]: expected a finite number >= 0, got inf",
             learning_rates=[np.inf, 1.0])
    _refused(r"learning_rates\[0\]: expected a finite number >= 0", learning_rates=[-0.1, 1])
    _refused(r"learning_rates\[1\]: expected a number", TypeError, learning_rates=[1, "a"])
    _refused(r"learning_rates: expected a sequence", TypeError, learning_rates=0.1)


def test_refuses_bad_kind_top_k_block_size_and_test_set():
    _refused(r"kind: expected one of \('dot', 'cosine'\), got 'sign'", kind="sign")
    _refused(rf"top_k: expected an integer in \[1, {N}\]", top_k=0)
    _refused(rf"top_k: expected an integer in \[1, {N}\]", top_k=N + 1)
    _refused(r"top_k: expected an integer", top_k=2.5)
    _refused(r"top_k: expected an integer", top_k=True)
    _refused(r"top_k: proponents and opponents need a test set", top_k=2, x_test=None,
             y_test=None)
    _refused(r"block_size: expected a positive integer", block_size=0)
    _refused(r"x_test, y_test: give both", y_test=None)
    x, _, xt, yt = _data()
    _refused(r"x_test and y_test must have the same number", y_test=yt[:3])
    _refused(r"x_test: contains NaN", x_test=np.where(xt > 1, np.nan, xt))
    _refused(r"y_test: labels must lie in \[0, 3\)", y_test=yt + 3)
    _refused(r"x: contains NaN", x=np.where(x > 1, np.nan, x))
    _refused(r"x_test: each example has shape \(4,\)", x_test=xt[:, :4])


def test_top_refuses_k_beyond_what_was_computed(checkpoints):
    x, y, xt, yt = _data()
    streamed = tfs.tracin(checkpoints[:1], x, y, xt, yt, loss=LOSS, top_k=3)
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 3\]"):
        streamed.top(4)
    with pytest.raises(ValueError, match=rf"k: expected an integer in \[1, {N}\]"):
        tfs.tracin(checkpoints[:1], x, y, xt, yt, loss=LOSS).top(0)
    with pytest.raises(ValueError, match="k: this result has no test set"):
        tfs.tracin(checkpoints[:1], x, y, loss=LOSS).top(1)


def test_accumulator_refuses_misuse():
    x, y, xt, yt = _data()
    acc = TracInAccumulator(x, y, xt, yt, loss=LOSS)
    with pytest.raises(ValueError, match="checkpoints: none added yet"):
        acc.result()
    with pytest.raises(ValueError, match="learning_rate: expected a finite number"):
        acc.add(_mlp(0), float("inf"))
    acc.add(_mlp(0), 1.0)
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="model: architecture differs from the first"):
        acc.add(other, 1.0)
