"""Figures of TracIn results: proponents/opponents grids and the flipped-label curve."""

import numpy as np
import pytest

from tfstiffness.influence import TracInResult
from tfstiffness.influence import plots as influence_plots


def _result(n=12, m=3, top_k=None) -> TracInResult:
    scores = np.random.default_rng(0).normal(size=(n, m))
    result = TracInResult(kind="dot", learning_rates=np.ones(2), self_influence=np.ones(n),
                          test_self_influence=np.ones(m), method="ghost", scores=scores)
    if top_k:
        result.proponents, result.proponent_scores, result.opponents, result.opponent_scores \
            = result.top(top_k)
        result.scores = None
    return result


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 3), (20,), (20, 1)])
def test_proponents_opponents_draws_images_and_sequences(shape, tmp_path):
    rng = np.random.default_rng(1)
    x, x_test = rng.random((12, *shape)), rng.random((3, *shape))
    y, y_test = np.arange(12) % 2, np.arange(3) % 2
    path = tmp_path / "p.png"
    fig = influence_plots.proponents_opponents(_result(top_k=3), x, y, x_test, y_test, [2, 0],
                                               k=2, class_names=["cat", "dog"], path=path)
    titles = [text.get_text() for text in fig.axes[0].texts]
    assert len(titles) == 2 * (1 + 2 * 2) + 1 and path.stat().st_size > 0  # + the title
    result = _result()
    best = int(np.argmax(result.scores[:, 2]))
    worst = int(np.argmin(result.scores[:, 2]))
    assert titles[0] == "test #2\nlabel cat" and titles[1].startswith(f"#{best} label ")
    assert titles[3].startswith(f"#{worst} label ")
    sequences = shape in ((20,), (20, 1))
    drawn = fig.axes[0].lines if sequences else fig.axes[0].images
    assert len(drawn) == 10  # One line or image per example shown.


def test_proponents_opponents_marks_flipped_labels_and_shows_test_ids():
    x, y = np.random.default_rng(2).random((12, 6)), np.arange(12) % 3
    original = y.copy()
    result = _result()
    best = int(np.argmax(result.scores[:, 1]))
    original[best] = (y[best] + 1) % 3
    fig = influence_plots.proponents_opponents(result, x, y, x[:3], y[:3], [1], k=1,
                                               test_ids=[40, 41, 42], y_original=original)
    titles = [text.get_text() for text in fig.axes[0].texts]
    assert titles[0] == f"test #41\nlabel {y[1]}"
    assert titles[1].endswith(f"(was {original[best]})")
    assert "(was" not in titles[2]
    with pytest.raises(ValueError, match=r"test_ids: expected 3 \(one per test example\)"):
        influence_plots.proponents_opponents(result, x, y, x[:3], y[:3], test_ids=[1])


def test_highest_self_influence_ranks_and_marks_flipped_labels(tmp_path):
    x, y = np.random.default_rng(3).random((9, 5, 5)), np.arange(9) % 3
    scores = np.array([0.1, 5.0, 0.2, 3.0, 3.0, 0.0, 0.3, 0.4, 0.5])
    original = y.copy()
    original[3] = 1  # y[3] is 0: flipped from 1.
    fig = influence_plots.highest_self_influence(scores, x, y, count=3, y_original=original,
                                                 path=tmp_path / "s.png")
    titles = [text.get_text() for text in fig.axes[0].texts]
    assert [t.split("\n")[0] for t in titles[:3]] == [
        "1. #1 label 1", "2. #3 label 0 (was 1)", "3. #4 label 1"]  # Ties: lower index first.
    assert titles[0].split("\n")[1] == "5"
    assert titles[-1] == "Highest self-influence (flipped labels in red)"
    assert len(fig.axes[0].images) == 3 and (tmp_path / "s.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"count: expected an integer in \[1, 9\]"):
        influence_plots.highest_self_influence(scores, x, y, count=10)
    with pytest.raises(ValueError, match=r"self_influence: expected \[9\]"):
        influence_plots.highest_self_influence(scores[:4], x, y)


def test_proponents_opponents_refuses_bad_input():
    x, y = np.zeros((12, 5, 5, 2)), np.zeros(12, int)
    xt, yt = np.zeros((3, 5, 5, 2)), np.zeros(3, int)
    with pytest.raises(ValueError, match=r"x: expected images .* got examples of shape"):
        influence_plots.proponents_opponents(_result(), x, y, xt, yt)
    x, xt = np.zeros((12, 6)), np.zeros((3, 6))
    with pytest.raises(ValueError, match="test_indices: 3 is outside"):
        influence_plots.proponents_opponents(_result(), x, y, xt, yt, [3])
    with pytest.raises(ValueError, match="x_test: the result has 3 test examples, got 2"):
        influence_plots.proponents_opponents(_result(), x, y, xt[:2], yt[:2])
    with pytest.raises(ValueError, match="y: expected 12 labels, got 4"):
        influence_plots.proponents_opponents(_result(), x, y[:4], xt, yt)
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 2\]"):
        influence_plots.proponents_opponents(_result(top_k=2), x, y, xt, yt, k=3)


def test_flipped_label_detection_curve():
    flipped = np.arange(50) < 5
    scores = np.where(flipped, 2.0, 0.0) + np.linspace(0, 1, 50)
    fig = influence_plots.flipped_label_detection(scores, flipped, baseline=-scores)
    ours, baseline = fig.axes[0].lines[:2]
    share, found = ours.get_data()
    assert found[5] == 1.0 and share[5] == 0.1  # all five flipped in the top tenth
    assert baseline.get_data()[1][45] == 0.0  # the reversed order finds them last
    assert "AUC 1.000" in ours.get_label() and "AUC 0.000" in baseline.get_label()
    with pytest.raises(ValueError, match=r"final loss: expected \(50,\) scores"):
        influence_plots.flipped_label_detection(scores, flipped, baseline=scores[:3])
