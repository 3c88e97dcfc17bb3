"""Bootstrap intervals: each resample against a brute force on the materialised resample,
coverage of a known population value, reproducibility by seed, and refusals."""

from __future__ import annotations

import types

import numpy as np
import pytest

from tfstiffness import measures
from tfstiffness.measures import alignment
from tfstiffness.measures.uncertainty import STATISTICS, bootstrap, resample_counts


def problem(seed=0, n_per_class=8, num_classes=3, dim=6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    g = rng.normal(size=(labels.size, dim)) + 1.2 * rng.normal(size=(num_classes, dim))[labels]
    x = g[:, :3] + rng.normal(size=(labels.size, 3))
    G = g @ g.T
    return G, measures.stiffness_matrix(G), labels, measures.input_distances(x)


def captured_counts(S, labels, num_samples, seed, labels2=None):
    """The resample counts `bootstrap` uses, captured through a callable statistic."""
    seen = []

    def record(w, w2=None):
        seen.append((w.copy(), None if w2 is None else w2.copy()))
        return 0.0

    bootstrap(record, S, labels, labels2=labels2, num_samples=num_samples, seed=seed)
    return seen[1:]  # the first call is the estimate, on all ones


# ---------------------------------------------------------------------------------------------
# Brute force: materialise each resample (duplicates included) and recompute by loops
# ---------------------------------------------------------------------------------------------


def brute_class_matrix(S, labels, origin_rows, origin_cols, labels2, num_classes, one_set):
    sums = np.zeros((num_classes, num_classes))
    counts = np.zeros((num_classes, num_classes))
    for i in origin_rows:
        for j in origin_cols:
            if one_set and i == j:
                continue  # same original example: a self-pair, even between two copies
            sums[labels[i], labels2[j]] += S[i, j]
            counts[labels[i], labels2[j]] += 1
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def brute_curve(S, d, labels, origin, edges, pairs):
    """Binned curve over the resample's unordered pairs of positions k < l."""
    num_bins = len(edges) - 1
    sums, counts = np.zeros(num_bins), np.zeros(num_bins)
    for k in range(len(origin)):
        for m in range(k + 1, len(origin)):
            i, j = origin[k], origin[m]
            same = labels[i] == labels[j]
            if i == j or (pairs == "within" and not same) or (pairs == "between" and same):
                continue
            b = min(int(np.searchsorted(edges, d[i, j], side="right")) - 1, num_bins - 1)
            if 0 <= b:
                sums[b] += S[i, j]
                counts[b] += 1
    with np.errstate(invalid="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts


def as_value(critical):
    if critical.xi is not None:
        return critical.xi
    return {"never_crossed": np.inf, "no_decay": np.inf, "nonpositive_from_start": -np.inf,
            "nonpositive_at_zero": -np.inf}.get(critical.status, np.nan)


def test_every_statistic_equals_a_brute_force_on_the_materialised_resamples():
    G, S, labels, d = problem()
    fine_to_coarse = np.array([0, 0, 1])
    results = bootstrap(list(STATISTICS)[:-1], S, labels, fine_to_coarse=fine_to_coarse,
                        distances=d, pairs="within", bins=5, num_samples=6, seed=11)
    coherence = bootstrap("m_coherence", G, labels, num_samples=6, seed=11)
    counts = captured_counts(S, labels, 6, 11)
    curve = measures.stiffness_vs_distance(S, labels=labels, bins=5, distances=d)
    for b, (w, _) in enumerate(counts):
        origin = np.repeat(np.arange(labels.size), w)
        assert np.bincount(labels[origin]).tolist() == [8, 8, 8]  # stratified
        assert np.any(w > 1)  # duplicates do occur
        C = brute_class_matrix(S, labels, origin, origin, labels, 3, True)
        within, between = measures.within_between(C)
        assert results["within"].samples[b] == pytest.approx(within, rel=1e-12)
        assert results["between"].samples[b] == pytest.approx(between, rel=1e-12)
        assert results["superclass_contrast"].samples[b] == pytest.approx(
            measures.superclass_contrast(C, fine_to_coarse), rel=1e-12)
        means, pair_counts = brute_curve(S, d, labels, origin, curve.edges, "within")
        resampled = measures.StiffnessCurve(curve.edges, curve.centres, means, pair_counts,
                                            "within")
        for name, method in (("xi_crossing", "crossing"), ("xi_linear_fit", "linear_fit")):
            expected = as_value(measures.critical_length(resampled, method))
            assert results[name].samples[b] == pytest.approx(expected, rel=1e-10)
        # m-coherence: 1 + (m - 1) * mean over pairs of distinct examples / mean |g|^2.
        sub = G[np.ix_(origin, origin)]
        distinct = origin[:, None] != origin[None, :]
        m = origin.size
        expected = 1 + (m - 1) * sub[distinct].mean() / np.diagonal(sub).mean()
        assert coherence.samples[b] == pytest.approx(expected, rel=1e-12)


def test_two_sets_resample_rows_and_columns_independently():
    rng = np.random.default_rng(5)
    g, h = rng.normal(size=(10, 4)) + 1.0, rng.normal(size=(8, 4))
    labels, labels2 = np.repeat([0, 1], 5), np.repeat([0, 1], 4)
    gram = types.SimpleNamespace(total=g @ h.T, sq_norms=np.sum(g**2, 1),
                                 sq_norms2=np.sum(h**2, 1), cross=True)
    S = measures.stiffness_matrix(gram)
    results = bootstrap(["within", "between"], gram, labels, labels2=labels2, num_samples=5,
                        seed=2)
    for b, (w, w2) in enumerate(captured_counts(S, labels, 5, 2, labels2)):
        rows, cols = np.repeat(np.arange(10), w), np.repeat(np.arange(8), w2)
        C = brute_class_matrix(S, labels, rows, cols, labels2, 2, False)
        within, between = measures.within_between(C)
        assert results["within"].samples[b] == pytest.approx(within, rel=1e-12)
        assert results["between"].samples[b] == pytest.approx(between, rel=1e-12)
    C = measures.class_stiffness(S, labels, labels2)
    assert results["within"].estimate == measures.within_between(C)[0]


def test_estimates_are_the_measures_on_the_original_examples():
    G, S, labels, d = problem(seed=1)
    gram = types.SimpleNamespace(total=G, sq_norms=np.diagonal(G), sq_norms2=np.diagonal(G),
                                 cross=False)
    results = bootstrap(list(STATISTICS), gram, labels, fine_to_coarse=np.array([0, 1, 1]),
                        distances=d, num_samples=3)
    C = measures.class_stiffness(S, labels)
    curve = measures.stiffness_vs_distance(S, labels=labels, distances=d)
    assert (results["within"].estimate, results["between"].estimate) == measures.within_between(C)
    assert results["superclass_contrast"].estimate == measures.superclass_contrast(
        C, np.array([0, 1, 1]))
    fit = measures.critical_length(curve, "linear_fit")
    assert results["xi_linear_fit"].estimate == as_value(fit)
    assert results["xi_crossing"].estimate == as_value(measures.critical_length(curve))
    assert results["m_coherence"].estimate == alignment.m_coherence(G)
    sign = bootstrap("within", gram, labels, kind="sign", num_samples=3)
    S_sign = measures.stiffness_matrix(G, kind="sign")
    assert sign.estimate == measures.within_between(measures.class_stiffness(S_sign, labels))[0]


def test_resample_counts_are_stratified_and_seeded():
    labels = np.array([1, 0, 1, 1, 2, 0, 1])
    counts = resample_counts(labels, 50, seed=4)
    for c, size in enumerate(np.bincount(labels)):
        assert np.all(counts[:, labels == c].sum(axis=1) == size)
    np.testing.assert_array_equal(counts, resample_counts(labels, 50, seed=4))
    assert not np.array_equal(counts, resample_counts(labels, 50, seed=5))


# ---------------------------------------------------------------------------------------------
# Coverage of a known population value
# ---------------------------------------------------------------------------------------------


def coverage(draw, statistic, truth, replications=150, num_samples=300):
    covered = 0
    for r in range(replications):
        matrix, labels = draw(np.random.default_rng(1000 + r))
        interval = bootstrap(statistic, matrix, labels, num_samples=num_samples, seed=r)
        covered += interval.low <= truth <= interval.high
    return covered / replications


def test_class_intervals_cover_the_population_value_at_about_the_stated_rate():
    # S_ij = z_i z_j with z_i ~ N(mu_class, 1) independent: for distinct examples the
    # population within-class mean is mean_c mu_c^2, the between-class one mean mu_a mu_b.
    mu = np.array([1.0, 0.4, -0.6])
    labels = np.repeat([0, 1, 2], 15)

    def draw(rng):
        z = mu[labels] + rng.normal(size=labels.size)
        return np.outer(z, z), labels

    within = np.mean(mu**2)
    between = np.mean([mu[a] * mu[b] for a in range(3) for b in range(3) if a != b])
    assert 0.88 <= coverage(draw, "within", within) <= 0.99
    assert 0.88 <= coverage(draw, "between", between) <= 0.99


def test_m_coherence_interval_covers_the_population_value():
    # g_i = mu + eps_i in d dims: alpha_m = 1 + (m - 1) |mu|^2 / (|mu|^2 + d).
    m, dim = 40, 4
    mu = np.full(dim, 0.5)

    def draw(rng):
        g = mu + rng.normal(size=(m, dim))
        return g @ g.T, None

    truth = 1 + (m - 1) * (mu @ mu) / (mu @ mu + dim)
    assert 0.88 <= coverage(draw, "m_coherence", truth) <= 0.99


# ---------------------------------------------------------------------------------------------
# Reproducibility and refusals
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_interval_other_seed_other_samples():
    _, S, labels, d = problem(seed=2)
    first = bootstrap(["within", "xi_linear_fit"], S, labels, distances=d, num_samples=40,
                      seed=9)
    again = bootstrap(["within", "xi_linear_fit"], S, labels, distances=d, num_samples=40,
                      seed=9)
    other = bootstrap(["within", "xi_linear_fit"], S, labels, distances=d, num_samples=40,
                      seed=10)
    for name in first:
        np.testing.assert_array_equal(first[name].samples, again[name].samples)
        assert (first[name].low, first[name].high) == (again[name].low, again[name].high)
    assert not np.array_equal(first["within"].samples, other["within"].samples)
    # One statistic alone sees the same resamples as in a group.
    alone = bootstrap("within", S, labels, num_samples=40, seed=9)
    np.testing.assert_array_equal(alone.samples, first["within"].samples)


def test_interval_reports_its_quantiles_and_reads_well():
    _, S, labels, _ = problem(seed=3)
    interval = bootstrap("between", S, labels, num_samples=200, confidence=0.8, seed=1)
    samples = np.sort(interval.samples)
    assert interval.low == samples[19] and interval.high == samples[179]  # 10 % tails
    assert interval.method == "percentile" and interval.confidence == 0.8
    assert str(interval).startswith(f"between = {interval.estimate:.3g}, 80% interval [")


def test_xi_that_is_not_a_number_is_recorded_as_infinity():
    # Stiffness positive and flat at every distance: never crosses, no decay.
    d = np.abs(np.subtract.outer(np.arange(12.0), np.arange(12.0))) / 12
    S = np.full((12, 12), 0.5) + 0.01 * np.cos(np.arange(144.0)).reshape(12, 12)
    S = (S + S.T) / 2
    result = bootstrap("xi_crossing", S, None, distances=d, pairs="all", num_samples=20)
    assert result.estimate == np.inf and result.low == np.inf and result.high == np.inf


def test_undefined_samples_are_counted_and_warned():
    S = np.eye(4)
    labels = np.array([0, 0, 1, 1])  # a resample drawing one example twice has no pair
    with pytest.warns(UserWarning, match=r"within is undefined on \d+ of 100 resamples"):
        interval = bootstrap("within", S, labels, num_samples=100, seed=0)
    # Both classes drew one example twice (probability 1/4): no pair, within is undefined.
    assert 0 < interval.num_undefined == int(np.isnan(interval.samples).sum()) < 100
    kept = np.sort(interval.samples[~np.isnan(interval.samples)])
    assert interval.low == np.quantile(kept, 0.025, method="inverted_cdf")


@pytest.mark.parametrize("kwargs, message", [
    ({"statistic": "mean"}, "statistic must be a callable, one of"),
    ({"statistic": []}, "statistic must be a callable, one of"),
    ({"num_samples": 0}, "num_samples must be a positive int"),
    ({"num_samples": 2.5}, "num_samples must be a positive int"),
    ({"num_samples": True}, "num_samples must be a positive int"),
    ({"confidence": 1.0}, r"confidence must be a number in \(0, 1\)"),
    ({"confidence": 95}, r"confidence must be a number in \(0, 1\)"),
    ({"seed": -1}, "seed must be an int >= 0"),
    ({"seed": 0.5}, "seed must be an int >= 0"),
    ({"labels": None}, "within needs labels"),
    ({"statistic": "superclass_contrast"}, "superclass_contrast needs fine_to_coarse"),
    ({"statistic": "xi_crossing"}, "xi_crossing needs the pair distances"),
    ({"statistic": ["within", "m_coherence"]}, "matrix: a plain array is either a stiffness"),
    ({"labels": np.zeros(5, int)}, "labels has 5 entries but S has 6 rows"),
    ({"labels": np.linspace(0, 1, 6)}, "labels must hold integers"),
])
def test_bad_arguments_are_refused_with_a_message(kwargs, message):
    arguments = {"statistic": "within", "matrix": np.eye(6), "labels": np.repeat([0, 1], 3)}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        bootstrap(arguments.pop("statistic"), arguments.pop("matrix"), **arguments)


def test_nan_and_two_set_misuse_are_refused():
    S = np.eye(4)
    S[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"^matrix holds 1 non-finite value.*index \(2, 3\)"):
        bootstrap("within", S, np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"^matrix holds 1 non-finite"):
        bootstrap("m_coherence", S)
    d = np.zeros((4, 4))
    d[0, 1] = np.inf
    with pytest.raises(ValueError, match=r"^distances holds 1 non-finite"):
        bootstrap("xi_crossing", np.eye(4), np.array([0, 0, 1, 1]), distances=d)
    with pytest.raises(ValueError, match="m_coherence is a property of one set"):
        bootstrap("m_coherence", np.ones((3, 4)))
    with pytest.raises(ValueError, match="labels2: matrix compares two sets"):
        bootstrap("within", np.ones((3, 4)), np.array([0, 1, 1]))
