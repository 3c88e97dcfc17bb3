"""The influence study's results: summary.json's entries, results.npz's arrays, the figures,
TensorBoard's scalars and the closing lines, from its TracIn scores (`studies.influence`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tfstiffness.studies import progress

__all__ = ["FIGURE_K", "ROWS_PER_PAGE", "TOP_SHARES", "headline", "mean_loss_accuracy",
           "per_example_loss", "results", "scalars"]

#: Proponents and opponents drawn per test example (all top_k are in results.npz).
FIGURE_K = 5
#: Test examples per page of the proponents figure.
ROWS_PER_PAGE = 10
#: Flipped-label shares reported: the flipped labels found in this share of the ranking.
TOP_SHARES = (0.05, 0.1, 0.2)


def per_example_loss(model, loss, x: np.ndarray, y: np.ndarray,
                     batch_size: int = 512) -> np.ndarray:
    """[N] loss of each example under `model` in inference mode (`loss` None: compiled)."""
    from tfstiffness.engine import losses

    values = []
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size], training=False)
        fn = losses.resolve_loss(loss, model, logits)
        values.append(np.asarray(fn(y[start:start + batch_size], logits), np.float64))
    return np.concatenate(values) if values else np.zeros(0)


def results(out, setup, model, loss, tracin, history, top_k, trained):
    """(summary.json's results, results.npz's arrays, figures by name) of the study's TracIn
    scores `tracin` (a `TracInResult`), `model` its final model, `setup` what the study
    prepared (data, labels, flipped labels, the test probe), `history` the training's
    per-epoch measurements and `trained` whether the study trained (or took checkpoints)."""
    from tfstiffness.influence import plots as influence_plots
    from tfstiffness.measures.neighbourhood import roc_auc

    train, test, labels = setup["train"], setup["test"], setup["labels"]
    flipped, index = setup["flipped"], setup["test_indices"]
    y_test = test.y[index]
    proponents, proponent_scores, opponents, opponent_scores = tracin.top(top_k)
    ranking = tracin.self_influence_ranking()
    final_loss = per_example_loss(model, loss, train.x, labels)
    train_loss, train_accuracy = mean_loss_accuracy(model, loss, train.x, labels)
    test_loss, test_accuracy = mean_loss_accuracy(model, loss, test.x, test.y)
    results: dict[str, Any] = {
        "what": "TracIn (Pruthi et al. 2020, TracInCP) over the checkpoints: score[i, j] = "
                "sum_t eta_t g_t(train_i) . g_t(test_j) (kind dot; cosine: of unit "
                "gradients); self-influence sum_t eta_t |g_t(train_i)|^2",
        "train_examples": len(train), "test_probe": len(index),
        "num_classes": setup["num_classes"], "parameters": int(model.count_params()),
        "checkpoints": tracin.num_checkpoints,
        "learning_rates": tracin.learning_rates.tolist(), "kind": tracin.kind,
        "gram_method": tracin.method, "top_k": top_k,
        "zero_gradients": tracin.num_zero_gradient,
        "final": {"train_loss": train_loss, "train_accuracy": train_accuracy,
                  "test_loss": test_loss, "test_accuracy": test_accuracy,
                  "labels": "train: the labels trained on (flipped ones included)"},
        "proponents": {
            "same_label_share": float(np.mean(labels[proponents] == y_test[:, None])),
            "opponents_same_label_share": float(np.mean(labels[opponents] == y_test[:, None])),
            "meaning": "share of the top-k proponents (opponents) whose training label equals "
                       "the test example's label"},
        "highest_self_influence": ranking[:20].tolist(),
    }
    arrays: dict[str, Any] = {
        "test_indices": index, "test_labels": y_test, "labels": labels,
        "scores": tracin.scores, "self_influence": tracin.self_influence,
        "test_self_influence": tracin.test_self_influence,
        "self_influence_ranking": ranking, "proponents": proponents,
        "proponent_scores": proponent_scores, "opponents": opponents,
        "opponent_scores": opponent_scores, "learning_rates": tracin.learning_rates,
        "final_loss": final_loss, **{f"epochs/{k}": v for k, v in history.items()}}
    if trained:
        results["final"]["epoch_loss"] = float(history["epoch_loss"][-1])
    y_original = None
    if flipped.any():
        y_original = train.y
        arrays.update(flipped=flipped, original_labels=train.y)
        order = ranking
        results["flipped_labels"] = {
            "fraction": float(flipped.mean()), "count": int(flipped.sum()),
            "self_influence_auc": roc_auc(tracin.self_influence, flipped),
            "final_loss_auc": roc_auc(final_loss, flipped),
            "found_in_top": {f"{share:g}": float(flipped[order[:round(share * len(order))]]
                                                 .sum() / flipped.sum())
                             for share in TOP_SHARES},
            "final_train_clean_accuracy": mean_loss_accuracy(model, loss, train.x,
                                                              train.y)[1]}

    figures: dict[str, Any] = {}
    x_test = test.x[index]
    k = min(top_k, FIGURE_K)
    for first in range(0, len(index), ROWS_PER_PAGE):
        rows = list(range(first, min(first + ROWS_PER_PAGE, len(index))))
        name = f"proponents_opponents_{first:03d}-{rows[-1]:03d}"
        figures[name] = influence_plots.proponents_opponents(
            tracin, train.x, labels, x_test, y_test, rows, k=k, class_names=train.class_names,
            test_ids=index, y_original=y_original)
    figures["highest_self_influence"] = influence_plots.highest_self_influence(
        tracin.self_influence, train.x, labels, count=min(16, len(train)),
        y_original=y_original, class_names=train.class_names)
    if flipped.any():
        figures["flipped_label_detection"] = influence_plots.flipped_label_detection(
            tracin.self_influence, flipped, final_loss)
    return results, arrays, figures


def mean_loss_accuracy(model, loss, x, y) -> tuple[float, float]:
    """Mean `loss` and accuracy of `model` on (x, y), in inference mode."""
    losses = per_example_loss(model, loss, x, y)
    predictions = []
    for start in range(0, len(y), 512):
        predictions.append(np.argmax(np.asarray(model(x[start:start + 512], training=False)),
                                     axis=-1))
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, int)
    return float(losses.mean()), float(np.mean(predicted == y))


def scalars(results: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of TensorBoard run ``influence``, from the study's results."""
    values = {"proponents_same_label_share": results["proponents"]["same_label_share"],
              "opponents_same_label_share":
                  results["proponents"]["opponents_same_label_share"]}
    flips = results.get("flipped_labels")
    if flips:
        values["self_influence_auc"] = flips["self_influence_auc"]
        values["final_loss_auc"] = flips["final_loss_auc"]
        for share, found in flips["found_in_top"].items():
            values[f"flipped_found_in_top_{share}"] = found
    return values


def headline(results: Mapping[str, Any]) -> list[str]:
    """The closing lines: final accuracies, proponents' labels, flipped labels found."""
    final = results["final"]
    proponents = results["proponents"]
    lines = [(f"final model: train accuracy {final['train_accuracy']:.3f} (labels trained "
              f"on), test accuracy {final['test_accuracy']:.3f}; TracIn over "
              f"{results['checkpoints']} checkpoints ({results['gram_method']}): "
              f"{proponents['same_label_share']:.3f} of the top-{results['top_k']} "
              f"proponents share the test example's label, "
              f"{proponents['opponents_same_label_share']:.3f} of the opponents")]
    flips = results.get("flipped_labels")
    if flips:
        found = flips["found_in_top"]["0.1"]
        lines.append(f"flipped labels ({flips['count']}): self-influence AUC "
                     f"{progress.format_number(flips['self_influence_auc'])}, final-loss AUC "
                     f"{progress.format_number(flips['final_loss_auc'])}; "
                     f"{found:.3f} of them in the top 10 % by self-influence")
    return lines

