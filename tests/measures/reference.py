"""Reference implementations for the measures' tests: plain loops that share no code with
the package, and small fixtures."""

from __future__ import annotations

import types

import numpy as np


def loop_cosine(G, row_norms, col_norms):
    out = np.zeros(G.shape)
    for i in range(G.shape[0]):
        for j in range(G.shape[1]):
            if row_norms[i] > 0 and col_norms[j] > 0:
                out[i, j] = G[i, j] / np.sqrt(row_norms[i] * col_norms[j])
    return out


def loop_class_stiffness(S, labels, labels2, num_classes, one_set):
    sums = np.zeros((num_classes, num_classes))
    counts = np.zeros((num_classes, num_classes))
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            if one_set and i == j:
                continue
            sums[labels[i], labels2[j]] += S[i, j]
            counts[labels[i], labels2[j]] += 1
    out = np.full((num_classes, num_classes), np.nan)
    for a in range(num_classes):
        for b in range(num_classes):
            if counts[a, b]:
                out[a, b] = sums[a, b] / counts[a, b]
    return out


def loop_distance(a, b, mean, std):
    a = (a.ravel() - mean) / np.where(std > 0, std, 1.0)
    b = (b.ravel() - mean) / np.where(std > 0, std, 1.0)
    na, nb = np.sqrt(a @ a), np.sqrt(b @ b)
    a = a / na if na > 0 else a
    b = b / nb if nb > 0 else b
    return min(max(1.0 - float(a @ b), 0.0), 2.0)


def loop_binned(pair_list, edges):
    """pair_list: (distance, stiffness) tuples -> (counts, means) by a loop over bins."""
    num_bins = len(edges) - 1
    counts = np.zeros(num_bins, int)
    sums = np.zeros(num_bins)
    for d, s in pair_list:
        for b in range(num_bins):
            last = b == num_bins - 1
            if edges[b] <= d < edges[b + 1] or (last and d == edges[-1]):
                counts[b] += 1
                sums[b] += s
                break
    means = np.array([sums[b] / counts[b] if counts[b] else np.nan for b in range(num_bins)])
    return counts, means


def random_gradients(rng, n, p=5):
    return rng.normal(size=(n, p))


def fake_gram(g1, g2=None):
    """Duck-typed GradientGram: only the attributes the measures read."""
    g2_ = g1 if g2 is None else g2
    return types.SimpleNamespace(
        total=g1 @ g2_.T,
        by_layer={},
        sq_norms=np.sum(g1**2, axis=1),
        sq_norms2=np.sum(g2_**2, axis=1),
        cross=g2 is not None,
    )


def nan_at(matrix, *index):
    matrix = np.array(matrix, dtype=float)
    matrix[index] = np.nan
    return matrix
