"""summary.json's entries built from a study's measurements: every scalar of a pair set and
kind, the critical lengths by both estimators, the bootstrap intervals and the notes that say
how they were computed; and (`streamed_results`) those of a saved model's streamed summary.

`m` below is a mapping of measurement name -> array stacked over the measured epochs
(`runner.train_measured`), and `e` an index into those epochs.

Example:
    >>> xi_dict(float("nan"), 1, 1.25)
    {'xi': None, 'status': 'never_crossed', 'bound': 1.25}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfstiffness.probes import XI_STATUSES

__all__ = ["CRITICAL_LENGTH_NOTE", "alignment_stats", "bootstrap_note", "critical_length_entry",
           "critical_lengths", "curve_at", "interval_end", "linear_fit_dict", "pair_stats",
           "streamed_results", "xi_dict"]


#: summary.json's note on the two critical-length estimators.
CRITICAL_LENGTH_NOTE = (
    "xi_crossing: the distance where the binned within-class stiffness first crosses zero "
    "(linear interpolation between the two bins around it); when it never crosses, xi is "
    "beyond 'bound', the largest distance binned, and no number is given. xi_linear_fit: "
    "where a straight line fitted to the bin means (weighted by their pair counts) reaches "
    "zero; 'extrapolated' is true when that distance lies outside the distances measured "
    "(a slope >= 0 gives no xi: status no_decay). See measures.critical_length.")


def bootstrap_note(samples: int, seed: int, confidence: float = 0.95) -> dict[str, Any] | None:
    """summary.json's description of the bootstrap intervals (None without them).

    Example:
        >>> bootstrap_note(200, 0)["samples"]
        200
    """
    if not samples:
        return None
    return {"samples": int(samples), "confidence": confidence, "seed": int(seed),
            "method": "percentile bootstrap; probe examples resampled with replacement within "
                      "each class; every statistic recomputed from the Gram matrix already "
                      "measured (tfstiffness.measures.uncertainty.bootstrap)",
            "infinite_ends": "an xi interval end '+inf' ('-inf') means that more than the "
                             "tail's share of resamples had no xi below (above) the distances "
                             "measured"}


def xi_dict(xi: float, status: int, bound: float) -> dict[str, Any]:
    """{"xi", "status", "bound"} of a crossing critical length stored as numbers (status < 0:
    no pair).

    Example:
        >>> xi_dict(float("nan"), 1, 1.25)
        {'xi': None, 'status': 'never_crossed', 'bound': 1.25}
    """
    if status < 0:
        return {"xi": None, "status": "no_pairs", "bound": None}
    return {"xi": None if np.isnan(xi) else float(xi), "status": XI_STATUSES[int(status)],
            "bound": None if np.isnan(bound) else float(bound)}


def linear_fit_dict(xi: float, status: int, slope: float, r_squared: float,
                    extrapolated: float, intercept: float = math.nan) -> dict[str, Any]:
    """{"xi", "status", "slope", "intercept", "r_squared", "extrapolated"} of a linear-fit
    critical length stored as numbers (NaN -> None; status < 0: no pair).

    Example:
        >>> linear_fit_dict(2.5, 3, -0.1, 0.8, 1.0)["extrapolated"]
        True
    """
    if status < 0:
        status = XI_STATUSES.index("no_pairs")

    def number(value: float) -> float | None:
        return None if value is None or not math.isfinite(float(value)) else float(value)

    fitted = number(xi) is not None
    return {"xi": number(xi), "status": XI_STATUSES[int(status)], "slope": number(slope),
            "intercept": number(intercept), "r_squared": number(r_squared),
            "extrapolated": bool(extrapolated == 1) if fitted else None}


def interval_end(value: float) -> float | str | None:
    """An interval end for JSON: a number, "+inf" / "-inf" (an xi beyond the distances
    measured in more than the tail's share of resamples), or None (undefined).

    Example:
        >>> interval_end(0.5), interval_end(float("inf")), interval_end(float("nan"))
        (0.5, '+inf', None)
    """
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return value


def _interval_entries(m: Mapping[str, np.ndarray], e: int, prefix: str) -> dict[str, Any]:
    """STAT -> {"low", "high"} of every ``PREFIX STAT_ci_low`` / ``_ci_high`` pair."""
    intervals = {}
    for key in m:
        if key.startswith(prefix) and key.endswith("_ci_low") and "/" not in key[len(prefix):]:
            stat = key[len(prefix):-len("_ci_low")]
            intervals[stat] = {"low": interval_end(m[key][e]),
                               "high": interval_end(m[f"{prefix}{stat}_ci_high"][e])}
    return intervals


def critical_lengths(m: Mapping[str, np.ndarray], e: int, pair: str,
                     kind: str) -> dict[str, dict[str, Any]]:
    """{"xi_crossing": `xi_dict`, "xi_linear_fit": `linear_fit_dict`} of one pair set and
    kind at measured epoch index `e` (statuses "no_pairs" without a curve)."""
    key = f"{pair}/{kind}"
    if f"{key}/xi_crossing_status" not in m:
        return {"xi_crossing": xi_dict(np.nan, -1, np.nan),
                "xi_linear_fit": linear_fit_dict(np.nan, -1, np.nan, np.nan, np.nan)}
    return {"xi_crossing": xi_dict(m[f"{key}/xi_crossing"][e], m[f"{key}/xi_crossing_status"][e],
                                   m[f"{key}/xi_crossing_bound"][e]),
            "xi_linear_fit": linear_fit_dict(
                m[f"{key}/xi_linear_fit"][e], m[f"{key}/xi_linear_fit_status"][e],
                m[f"{key}/xi_linear_fit_slope"][e], m[f"{key}/xi_linear_fit_r2"][e],
                m[f"{key}/xi_linear_fit_extrapolated"][e],
                m[f"{key}/xi_linear_fit_intercept"][e]
                if f"{key}/xi_linear_fit_intercept" in m else math.nan)}


def pair_stats(m: Mapping[str, np.ndarray], e: int, pair: str, kind: str) -> dict[str, Any]:
    """Every scalar measure of one pair set and kind at measured epoch index `e`, with xi by
    both estimators (`critical_lengths`) and, when measured, the bootstrap intervals
    (``"intervals": {stat: {"low", "high"}}``, ends as `interval_end`).

    Scalars are taken generically (every 0-d measure of `probes.ProbeSets` except the xi
    bookkeeping and the interval ends), so a measure added there reaches summary.json
    without a change here.
    """
    prefix = f"{pair}/{kind}/"
    stats: dict[str, Any] = {}
    for key, series in m.items():
        if not key.startswith(prefix) or series.ndim != 1 or "/" in key[len(prefix):]:
            continue
        name = key[len(prefix):]
        if name.startswith("xi_") or name.endswith(("_ci_low", "_ci_high")):
            continue
        value = float(series[e])
        stats[name] = value if math.isfinite(value) else None
    stats.update(critical_lengths(m, e, pair, kind))
    intervals = _interval_entries(m, e, prefix)
    if intervals:
        stats["intervals"] = intervals
    return stats


def alignment_stats(m: Mapping[str, np.ndarray], e: int, pair: str) -> dict[str, Any]:
    """The gradient-alignment measures of one pair set at measured epoch index `e`: scalars,
    ``class_m_coherence`` as a list, and the intervals as in `pair_stats`."""
    prefix = f"{pair}/alignment/"
    stats: dict[str, Any] = {}
    for key, series in m.items():
        if not key.startswith(prefix) or key.endswith(("_ci_low", "_ci_high")):
            continue
        value = series[e]
        stats[key[len(prefix):]] = (float(value) if math.isfinite(value) else None) if (
            np.ndim(value) == 0) else [float(v) if math.isfinite(v) else None for v in value]
    intervals = _interval_entries(m, e, prefix)
    if intervals:
        stats["intervals"] = intervals
    return stats


def curve_at(m: Mapping[str, np.ndarray], e: int, pair: str = "train_train",
             kind: str = "cosine"):
    """(curve, (crossing, linear fit)) of measured epoch index `e`, as
    `plots.stiffness_vs_distance` takes them, or None when the pair set has no within-class
    pair."""
    from types import SimpleNamespace

    key = f"{pair}/{kind}"
    if f"{key}/curve_edges" not in m:
        return None
    edges = m[f"{key}/curve_edges"][e]
    counts = m[f"{key}/curve_counts"][e]
    curve = SimpleNamespace(edges=edges, means=m[f"{key}/curve_means"][e], counts=counts,
                            pairs="within", centres=0.5 * (edges[1:] + edges[:-1]))
    xi = critical_lengths(m, e, pair, kind)
    filled = np.flatnonzero(np.asarray(counts) > 0)
    distance_range = ((float(edges[filled[0]]), float(edges[filled[-1] + 1])) if filled.size
                      else None)
    crossing = SimpleNamespace(method="crossing", **xi["xi_crossing"])
    fit = SimpleNamespace(method="linear_fit", distance_range=distance_range,
                          **xi["xi_linear_fit"])
    return curve, (crossing, fit)


def critical_length_entry(curve: Any, method: str) -> dict[str, Any]:
    """summary.json's entry of `measures.critical_length` of a curve by `method`
    ("crossing" or "linear_fit"): xi, status, bound and its text (and the fit's line)."""
    from tfstiffness import measures

    critical = measures.critical_length(curve, method=method)
    entry = {"xi": critical.xi, "status": critical.status, "bound": critical.bound,
             "text": str(critical)}
    if method == "linear_fit":
        entry.update(slope=critical.slope, intercept=critical.intercept,
                     r_squared=critical.r_squared, extrapolated=critical.extrapolated)
    return entry


def streamed_results(result: Any, y: np.ndarray, y2: np.ndarray | None,
                     pairs: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """summary.json's results and results.npz's arrays of a `streaming.StiffnessSummary` of
    examples labelled `y` (and a second set `y2`), its curves binning `pairs`."""
    stiffness: dict[str, Any] = {}
    arrays: dict[str, Any] = {"y": y, "sq_norms": result.sq_norms,
                              "blocks_by_worker": np.asarray(result.blocks_by_worker)}
    if y2 is not None:
        arrays.update(y2=y2, sq_norms2=result.sq_norms2)
    for kind in ("sign", "cosine"):
        entry: dict[str, Any] = {"within": result.within[kind],
                                 "between": result.between[kind]}
        if kind in result.superclass_contrast:
            entry["superclass_contrast"] = result.superclass_contrast[kind]
        arrays[f"class_matrix_{kind}"] = result.class_matrix[kind]
        curve = result.distance_curve.get(kind)
        if curve is not None:
            entry["xi"] = {method: critical_length_entry(curve, method)
                           for method in ("crossing", "linear_fit")}
            arrays[f"curve_means_{kind}"] = curve.means
            arrays["curve_edges"], arrays["curve_counts"] = curve.edges, curve.counts
        if kind in result.neighbourhood:
            values = result.neighbourhood[kind]
            finite = values[np.isfinite(values)]
            entry["neighbourhood_mean"] = float(finite.mean()) if finite.size else None
            arrays[f"neighbourhood_{kind}"] = values
        stiffness[kind] = entry
    neighbours = None
    if result.neighbour_counts is not None:
        from tfstiffness.measures.neighbourhood import NEIGHBOUR_SHARE, suggested_radius

        arrays["neighbour_counts"] = result.neighbour_counts
        arrays["nearest_distances"] = result.nearest_distances
        neighbours = {"no_neighbour": int((result.neighbour_counts == 0).sum()),
                      "nearest_distance_median": float(np.median(result.nearest_distances)),
                      "suggested_radius": suggested_radius(result.nearest_distances),
                      "suggested_radius_share": NEIGHBOUR_SHARE}
    stats = result.alignment
    alignment: dict[str, Any] = {"gradient_confusion": {k: stats.gradient_confusion(k)
                                                        for k in ("gram", "cosine")}}
    if stats.one_set:
        alignment.update(m_coherence=stats.m_coherence(),
                         gradient_diversity=stats.gradient_diversity(),
                         class_m_coherence=stats.class_m_coherence().tolist())
    for name in ("block_sums", "traces", "min_off_diagonal", "min_off_diagonal_cosine"):
        arrays[f"alignment_{name}"] = getattr(stats, name)
    results = {"examples": len(y), "examples2": None if y2 is None else len(y2),
               "num_classes": int(result.class_matrix["cosine"].shape[0]), "pairs": pairs,
               "stiffness": stiffness, "alignment": alignment,
               "zero_gradients": result.num_zero_gradient,
               "neighbourhood": neighbours,
               "blocks": {"total": result.blocks_total, "resumed": result.blocks_resumed,
                          "by_worker": list(result.blocks_by_worker)}}
    return results, arrays
