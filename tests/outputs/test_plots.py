"""Tests for tfstiffness.outputs.plots: files written, pixel sizes, centred colour maps, content."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.colors as mcolors
import matplotlib.image as mimage
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from tfstiffness.outputs import plots


def _assert_png(path, fig) -> None:
    """The PNG exists, decodes, and has the figure's size at plots.DPI."""
    assert path.is_file()
    pixels = mimage.imread(path)
    width, height = fig.get_size_inches() * plots.DPI
    assert abs(pixels.shape[0] - height) <= 1
    assert abs(pixels.shape[1] - width) <= 1
    assert pixels.shape[2] in (3, 4)
    # No temporary file is left behind by the atomic write.
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def _stiffness_mappables(fig):
    found = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue  # the colour bar's own swatch mesh
        for artist in list(ax.images) + list(ax.collections):
            cmap = getattr(artist, "get_cmap", lambda: None)()
            if cmap is not None and cmap.name == "RdBu_r" and artist.get_array() is not None:
                found.append(artist)
    return found


def _assert_centred(fig) -> None:
    mappables = _stiffness_mappables(fig)
    assert mappables, "no diverging colour map found"
    for artist in mappables:
        assert artist.norm.vmax > 0
        assert artist.norm.vmin == -artist.norm.vmax
        assert mcolors.same_color(artist.get_cmap().get_bad(), plots.NAN_COLOUR)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def _curve(means, counts=None, pairs="within"):
    edges = np.linspace(0.0, 1.6, len(means) + 1)
    return SimpleNamespace(edges=edges, centres=(edges[1:] + edges[:-1]) / 2,
                           means=np.asarray(means, float),
                           counts=None if counts is None else np.asarray(counts), pairs=pairs)


# ---------------------------------------------------------------------------------------------


def test_symmetric_norm_and_cmap():
    norm = plots.symmetric_norm([0.2, -0.7, np.nan, 0.1])
    assert (norm.vmin, norm.vmax) == (-0.7, 0.7)
    assert (plots.symmetric_norm([np.nan]).vmin, plots.symmetric_norm([0.0]).vmax) == (-1, 1)
    assert plots.symmetric_norm([5.0], vmax=1.0).vmax == 1.0
    with pytest.raises(ValueError):
        plots.symmetric_norm([1.0], vmax=0.0)


def test_class_matrix_superclass_blocks(tmp_path):
    rng = np.random.default_rng(0)
    fine_to_coarse = rng.permutation(np.repeat(np.arange(20), 5))
    C = rng.uniform(-0.3, 0.5, (100, 100))
    C[4, 9] = np.nan
    names = [f"super{i:02d}" for i in range(20)]
    path = tmp_path / "nested" / "dir" / "class100.png"
    fig = plots.class_matrix(C, fine_to_coarse, coarse_names=names, path=path)
    _assert_png(path, fig)
    _assert_centred(fig)
    ax = fig.axes[0]
    # Blocks labelled, not 100 classes; 19 separators in each direction.
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert len(ax.lines) == 38
    # Stable reorder by super-class; the NaN pair is masked (drawn with the "bad" colour).
    order = np.argsort(fine_to_coarse, kind="stable")
    shown = ax.images[0].get_array()
    np.testing.assert_array_equal(shown.filled(np.nan), C[np.ix_(order, order)])
    assert shown.mask.sum() == 1
    assert ax.images[0].norm.vmax == pytest.approx(np.nanmax(np.abs(C)))


def test_class_matrix_plain_and_pdf(tmp_path):
    C = np.array([[0.8, -0.2, np.nan], [-0.2, 0.6, 0.1], [np.nan, 0.1, 0.4]])
    fig = plots.class_matrix(C, class_names=["cat", "dog", "eel"], vmax=1.0,
                             path=tmp_path / "c3.pdf")
    assert (tmp_path / "c3.pdf").read_bytes().startswith(b"%PDF")
    _assert_centred(fig)
    assert fig.axes[0].images[0].norm.vmax == 1.0
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cat", "dog", "eel"]
    assert isinstance(fig.canvas, FigureCanvasAgg)
    with pytest.raises(ValueError):
        plots.class_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        plots.class_matrix(np.zeros((3, 3)), fine_to_coarse=[0, 1])


def test_save_figure_rejects_unknown_format(tmp_path):
    fig = plots.class_matrix(np.eye(2))
    with pytest.raises(ValueError, match="format"):
        plots.save_figure(fig, tmp_path / "c.jpg")
    assert list(tmp_path.iterdir()) == []


def test_superclass_matrix(tmp_path):
    rng = np.random.default_rng(1)
    C20 = rng.uniform(-0.2, 0.4, (20, 20))
    C20[0, 1] = np.nan
    C20[2, 3] = -0.001  # would print as "-0.00"
    names = [f"coarse_{i}" for i in range(20)]
    fig = plots.superclass_matrix(C20, names, path=tmp_path / "super.png")
    _assert_png(tmp_path / "super.png", fig)
    _assert_centred(fig)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 399  # every finite cell annotated
    assert "-0.00" not in texts
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert "same-class pairs excluded" in ax.get_xlabel()  # What the diagonal holds.


def test_stiffness_vs_distance_single(tmp_path):
    curve = _curve([0.5, 0.3, 0.1, np.nan, -0.1, -0.2], counts=[5, 20, 40, 0, 30, 10])
    critical = SimpleNamespace(xi=0.93, status="crossed", bound=None)
    fig = plots.stiffness_vs_distance(curve, critical, label="lr=0.01",
                                      path=tmp_path / "svd.png")
    _assert_png(tmp_path / "svd.png", fig)
    ax = fig.axes[0]
    line = ax.lines[0]
    assert len(line.get_xdata()) == 5  # the empty bin is skipped
    assert np.all(np.isfinite(line.get_ydata()))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["lr=0.01", "ξ = 0.93"]
    xi_lines = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert xi_lines and xi_lines[0].get_xdata()[0] == 0.93
    assert "within" in ax.get_title()
    # Counts drawn on the twin axis.
    assert fig.axes[1].get_ylabel() == "pairs per bin"
    assert len(fig.axes[1].patches) == 1


def test_stiffness_vs_distance_overlay_and_bounds(tmp_path):
    entries = [
        (_curve([0.5, 0.2, -0.1]), SimpleNamespace(xi=0.7, status="crossed", bound=None),
         "lr=0.1"),
        (_curve([0.5, 0.4, 0.3], counts=[1, 2, 3]),
         SimpleNamespace(xi=None, status="never_crossed", bound=1.33), "lr=0.01"),
        (_curve([-0.1, -0.2, -0.3]),
         SimpleNamespace(xi=None, status="nonpositive_from_start", bound=0.27), "lr=0.001"),
    ]
    fig = plots.stiffness_vs_distance(entries, path=tmp_path / "overlay.png")
    _assert_png(tmp_path / "overlay.png", fig)
    ax = fig.axes[0]
    assert len(ax.texts) == 0  # No free text that could cross the curves or each other.
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # Below the plot.
    assert ax.get_legend() is None
    assert "lr=0.1: ξ = 0.7" in legend and "lr=0.01" in legend
    assert "lr=0.01: ξ > 1.33 (never crossed)" in legend
    assert "lr=0.001: ξ < 0.27 (≤ 0 from the first bin)" in legend
    # Markers on the zero line at the bounds, pointing to where xi lies.
    markers = {line.get_marker(): line.get_xdata()[0] for line in ax.lines
               if line.get_marker() in (">", "<")}
    assert markers == {">": 1.33, "<": 0.27}


def test_stiffness_vs_distance_into_given_axes_with_mapping_and_float():
    fig = plots.class_matrix(np.eye(2))  # any figure; add a fresh axes to it
    ax = fig.add_subplot(1, 2, 2)
    curve = {"centres": np.array([0.1, 0.3, 0.5]), "means": np.array([0.3, 0.0, -0.2])}
    out = plots.stiffness_vs_distance(curve, 0.3, ax=ax)
    assert out is fig
    assert "ξ = 0.3" in [t.get_text() for t in ax.get_legend().get_texts()]


def _history():
    history = {}
    for k, lr in enumerate(["lr=0.001", "lr=0.01", "lr=0.1"]):
        epoch = np.arange(8)
        xi = np.linspace(0.9, 0.3, 8) / (k + 1)
        xi[0] = np.nan
        history[lr] = {
            "epoch": epoch,
            "train_loss": 2.3 * np.exp(-(k + 1) * epoch / 4) + 0.01,
            "within": np.linspace(0.6, 0.2, 8),
            "between": np.linspace(0.0, 0.1, 8),
            "xi_crossing": xi,
        }
    return history


def test_training_curves_mark_where_xi_is_undefined(tmp_path):
    history = _history()
    for run in history.values():
        xi = run["xi_crossing"]
        run["xi_crossing_status"] = np.where(np.isnan(xi), 1, 0)  # never_crossed where NaN
        run["xi_crossing_bound"] = np.where(np.isnan(xi), 1.4, np.nan)
    history["lr=0.1"]["xi_crossing"][3] = np.nan
    history["lr=0.1"]["xi_crossing_status"][3] = 2  # nonpositive_from_start
    history["lr=0.1"]["xi_crossing_bound"][3] = 0.2
    fig = plots.training_curves(history, path=tmp_path / "xi.png")
    _assert_png(tmp_path / "xi.png", fig)
    xi_ax = fig.axes[2]
    ups = [ln for ln in xi_ax.lines if ln.get_marker() == "^"]
    downs = [ln for ln in xi_ax.lines if ln.get_marker() == "v"]
    assert len(ups) == 3 and len(downs) == 1
    assert all(ln.get_ydata()[0] == 1.4 for ln in ups) and downs[0].get_ydata()[0] == 0.2
    # The three runs share the bound: their markers are dodged apart, not drawn on top.
    assert len({ln.get_xdata()[0] for ln in ups}) == 3
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("above the bound" in t for t in legend)
    assert any("below the bound" in t for t in legend)


def test_training_curves_epoch_and_equal_loss(tmp_path):
    fig = plots.training_curves(_history(), path=tmp_path / "train.png")
    _assert_png(tmp_path / "train.png", fig)
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_ylabel() for ax in axes] == [
        "within-class stiffness", "between-class stiffness", "critical length ξ (crossing)"]
    assert all(len([ln for ln in ax.lines if ln.get_label().startswith("lr=")]) == 3
               for ax in axes)
    assert not axes[0].xaxis_inverted()

    fig = plots.training_curves(_history(), x="train_loss", path=tmp_path / "loss.png")
    _assert_png(tmp_path / "loss.png", fig)
    axes = [ax for ax in fig.axes if ax.lines]
    assert all(ax.xaxis_inverted() for ax in axes)
    assert axes[0].get_xscale() == "log"
    with pytest.raises(KeyError):
        plots.training_curves({"a": {"within": np.ones(3)}}, x="train_loss")


def test_training_curves_bands_and_extrapolated_points(tmp_path):
    history = _history()
    for run in history.values():
        run["within_low"], run["within_high"] = run["within"] - 0.05, run["within"] + 0.05
        run["within_high"][2] = np.inf  # An unbounded end leaves the band out there.
        run["xi_linear_fit"] = np.linspace(2.5, 1.0, 8)
        run["xi_linear_fit_extrapolated"] = (run["xi_linear_fit"] > 1.5).astype(float)
    fig = plots.training_curves(history, path=tmp_path / "bands.png")
    _assert_png(tmp_path / "bands.png", fig)
    within_ax, fit_ax = fig.axes[0], fig.axes[3]
    assert len(within_ax.collections) == 3  # One band per run.
    paths = within_ax.collections[0].get_paths()
    assert len(paths) == 2  # Split where the upper end is infinite.
    hollow = [ln for ln in fit_ax.lines if ln.get_markerfacecolor() == "white"]
    assert len(hollow) == 3 and all(len(ln.get_xdata()) == 5 for ln in hollow)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("extrapolated" in t for t in legend) and any("interval" in t for t in legend)


def test_stiffness_vs_distance_draws_both_estimators(tmp_path):
    curve = _curve([0.5, 0.4, 0.3])
    crossing = SimpleNamespace(method="crossing", xi=None, status="never_crossed", bound=1.33)
    fit = SimpleNamespace(method="linear_fit", xi=1.8, status="fitted", slope=-0.25,
                          intercept=0.45, r_squared=0.9, extrapolated=True,
                          distance_range=(0.0, 1.33))
    fig = plots.stiffness_vs_distance(curve, (crossing, fit), path=tmp_path / "both.png")
    _assert_png(tmp_path / "both.png", fig)
    ax = fig.axes[0]
    texts = [t.get_text() for t in (ax.get_legend() or fig.legends[0]).get_texts()]
    assert "ξ > 1.33 (never crossed)" in texts
    assert "ξ = 1.8 (linear fit, R² 0.90, extrapolated past 1.33)" in texts
    # The fitted line over the distances measured, continued to xi, where a hollow X sits.
    dotted = [ln for ln in ax.lines if ln.get_linestyle() == ":" and len(ln.get_xdata()) == 2]
    assert [tuple(ln.get_xdata()) for ln in dotted[:2]] == [(0.0, 1.33), (1.33, 1.8)]
    xs = [ln for ln in ax.lines if ln.get_marker() == "X"]
    assert xs[0].get_xdata()[0] == 1.8 and xs[0].get_markerfacecolor() == "white"
    no_decay = SimpleNamespace(method="linear_fit", xi=None, status="no_decay", slope=0.1,
                               intercept=0.2, r_squared=0.3, extrapolated=None,
                               distance_range=(0.0, 1.33))
    fig = plots.stiffness_vs_distance(curve, [crossing, no_decay])
    texts = [t.get_text() for t in (fig.axes[0].get_legend() or fig.legends[0]).get_texts()]
    assert any("no ξ (no decay; slope +0.1" in t for t in texts)


def _arcs_grid(n=30):
    g = np.linspace(-1.0, 1.0, n)
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    r = np.hypot(x[:, 0] - 0.2, x[:, 1])
    labels = (r < 0.5).astype(int)
    values = np.tanh(4 * (np.abs(r - 0.5) - 0.1))
    values[::41] = np.nan
    t = np.linspace(0, 2 * np.pi, 100)
    boundary = np.stack([0.2 + 0.5 * np.cos(t), 0.5 * np.sin(t)], -1)
    return x, values, labels, boundary


def test_neighbourhood_map_grid(tmp_path):
    x, values, labels, boundary = _arcs_grid()
    perm = np.random.default_rng(0).permutation(len(x))  # grid detection is order-free
    fig = plots.neighbourhood_map(x[perm], values[perm], labels=labels[perm], boundary=boundary,
                                  radius=0.1, path=tmp_path / "nbhd.png")
    _assert_png(tmp_path / "nbhd.png", fig)
    _assert_centred(fig)
    ax = fig.axes[0]
    mesh = _stiffness_mappables(fig)[0]
    assert mesh.get_array().size == 900
    assert np.ma.count_masked(mesh.get_array()) == np.isnan(values).sum()
    assert any(np.array_equal(ln.get_xydata(), boundary) for ln in ax.lines)
    assert "r = 0.1" in ax.get_title()
    assert len(ax.patches) == 1  # the scale circle


def test_neighbourhood_map_scatter_and_boundary_list(tmp_path):
    x, values, labels, boundary = _arcs_grid()
    keep = np.random.default_rng(0).choice(len(x), 200, replace=False)
    fig = plots.neighbourhood_map(x[keep], values[keep], labels=labels[keep],
                                  boundary=[boundary, boundary[:10] * 0.5],
                                  path=tmp_path / "scatter.png")
    _assert_png(tmp_path / "scatter.png", fig)
    _assert_centred(fig)
    ax = fig.axes[0]
    assert len(_stiffness_mappables(fig)) == 2  # one marker shape per class
    assert len(ax.lines) == 2
    with pytest.raises(ValueError):
        plots.neighbourhood_map(np.zeros((4, 3)), np.zeros(4))


def test_layerwise_curves(tmp_path):
    flat = {
        "trained": {"dense": 0.5, "dense_1": 0.3, "dense_2": None},
        "untrained": {"dense": 0.1, "dense_1": 0.05, "dense_2": 0.0},
    }
    fig = plots.layerwise_curves(flat, path=tmp_path / "layers.png")
    _assert_png(tmp_path / "layers.png", fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["dense", "dense_1", "dense_2"]
    assert np.isnan(ax.lines[0].get_ydata()[2])

    nested = {
        "[64, 8, 4]": {"within": {"a": 0.4, "b": 0.2}, "between": {"a": 0.1, "b": 0.0}},
        "[8, 64, 8]": {"within": {"c": 0.3, "d": 0.1, "e": 0.0},
                       "between": {"c": 0.0, "d": 0.1, "e": 0.0}},
    }
    fig = plots.layerwise_curves(nested, path=tmp_path / "nested.png")
    _assert_png(tmp_path / "nested.png", fig)
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_ylabel() for ax in axes] == ["within stiffness", "between stiffness"]
    assert axes[0].get_xlabel() == "layer (index)"  # names differ between conditions
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["1", "2", "3"]
