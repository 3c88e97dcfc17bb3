"""Synthetic data sets with known structure: deterministic by seed, no download.

- `hierarchical_images`: images whose classes are grouped into super-classes (CIFAR-100-like).
- `two_arcs_grid`: Walker's toy problem, a grid on [-1, 1]^2 labelled by two interlocking arcs,
  with `arcs_boundary_distance` giving each point's distance to the true class boundary.
- `gaussian_blobs`: isotropic Gaussian clusters, one per class.
- `synthetic_text`: token sequences (0 = padding) whose label is set by class-indicative tokens.

Example:
    >>> from tfstiffness import synthetic
    >>> x, y = synthetic.two_arcs_grid(n=50)
    >>> x.shape, int(y.sum())
    ((2500, 2), 1250)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from tfstiffness.data.cifar100_labels import FINE_TO_COARSE

__all__ = [
    "ARC_CENTERS",
    "ARC_RADIUS",
    "arcs_boundary_distance",
    "gaussian_blobs",
    "hierarchical_fine_to_coarse",
    "hierarchical_images",
    "synthetic_text",
    "text_indicative_tokens",
    "two_arcs_distances",
    "two_arcs_grid",
    "two_arcs_labels",
]


def _rngs(seed: int, n: int) -> list[np.random.Generator]:
    # Independent streams, so e.g. class prototypes do not depend on how many examples follow.
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


# --------------------------------------------------------------------------------------------
# Hierarchical images
# --------------------------------------------------------------------------------------------


def hierarchical_fine_to_coarse(
    num_superclasses: int = 20, classes_per_superclass: int = 5
) -> np.ndarray:
    """The fine-to-coarse table used by `hierarchical_images`.

    With the default 20 x 5 sizes it is CIFAR-100's table
    (`tfstiffness.data.cifar100_labels.FINE_TO_COARSE`), so code written for CIFAR-100's
    super-classes runs unchanged on the synthetic set. Otherwise fine class ``k`` belongs to
    super-class ``k // classes_per_superclass``.

    Args:
        num_superclasses: Number of super-classes.
        classes_per_superclass: Fine classes in each super-class.

    Returns:
        int64 array of shape [num_superclasses * classes_per_superclass].

    Example:
        >>> hierarchical_fine_to_coarse(3, 2).tolist()
        [0, 0, 1, 1, 2, 2]
    """
    if num_superclasses < 1 or classes_per_superclass < 1:
        raise ValueError("num_superclasses and classes_per_superclass must be positive")
    if (num_superclasses, classes_per_superclass) == (20, 5):
        return FINE_TO_COARSE.copy()
    return np.repeat(np.arange(num_superclasses, dtype=np.int64), classes_per_superclass)


def _upsample_matrix(out_size: int, in_size: int) -> np.ndarray:
    """[out, in] linear-interpolation matrix from `in_size` knots to `out_size` pixels."""
    if in_size == 1:
        return np.ones((out_size, 1))
    pos = np.linspace(0.0, in_size - 1, out_size)
    lo = np.minimum(np.floor(pos).astype(int), in_size - 2)
    frac = pos - lo
    m = np.zeros((out_size, in_size))
    m[np.arange(out_size), lo] = 1.0 - frac
    m[np.arange(out_size), lo + 1] += frac
    return m


def _smooth_patterns(
    rng: np.random.Generator, count: int, image_shape: Sequence[int], grid: int
) -> np.ndarray:
    """`count` random smooth images: Gaussian knots on a grid, bilinearly upsampled, each
    standardised to zero mean and unit standard deviation."""
    height, width, channels = image_shape
    gh, gw = min(grid, height), min(grid, width)
    knots = rng.standard_normal((count, gh, gw, channels))
    up = np.einsum("hi,nijc,wj->nhwc", _upsample_matrix(height, gh), knots,
                   _upsample_matrix(width, gw))
    up -= up.mean(axis=(1, 2, 3), keepdims=True)
    up /= up.std(axis=(1, 2, 3), keepdims=True) + 1e-12
    return up


def hierarchical_images(
    num_per_class: int = 50,
    num_superclasses: int = 20,
    classes_per_superclass: int = 5,
    image_shape: Sequence[int] = (32, 32, 3),
    noise: float = 1.0,
    seed: int = 0,
    class_scale: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images with a two-level class hierarchy, like CIFAR-100's classes and super-classes.

    Each super-class has a random smooth prototype (coarse 4x4 knots, unit std); each fine
    class adds its own smooth pattern (finer 8x8 knots, std ``class_scale``); each example adds
    i.i.d. Gaussian pixel noise of std ``noise``. So the mean image of class ``k`` is
    ``prototype[coarse(k)] + class_scale * pattern[k]``: classes of one super-class share most
    of their signal, and their class means are closer to each other than to other classes'.
    Prototypes and patterns depend only on ``seed`` and the sizes, not on ``num_per_class``.

    Label convention: see `hierarchical_fine_to_coarse` (CIFAR-100's table for 20 x 5).

    These are the raw values, with a pixel std of about ``sqrt(1.25 + noise^2)`` for the
    default ``class_scale``; ``data.load("hierarchical_images")`` standardises them per
    channel with its training split's statistics, as the real image sets are.

    Args:
        num_per_class: Examples of each fine class.
        num_superclasses: Number of super-classes (coarse labels).
        classes_per_superclass: Fine classes per super-class.
        image_shape: ``(height, width, channels)``.
        noise: Standard deviation of the per-pixel noise.
        seed: Seed of everything random.
        class_scale: Standard deviation of the class-specific patterns, relative to the
            super-class prototypes (std 1).

    Returns:
        ``(x, y_fine, y_coarse)``: x float32 [N, *image_shape], labels int64 [N], with
        ``N = num_per_class * num_superclasses * classes_per_superclass``, in shuffled order
        and ``y_coarse == hierarchical_fine_to_coarse(...)[y_fine]``.

    Example:
        >>> x, y, yc = hierarchical_images(2, 4, 3, image_shape=(8, 8, 1), seed=1)
        >>> x.shape, x.dtype.name, yc.tolist() == (y // 3).tolist()
        ((24, 8, 8, 1), 'float32', True)
    """
    if len(image_shape) != 3:
        raise ValueError(f"image_shape: expected (height, width, channels), got {image_shape}")
    if num_per_class < 1:
        raise ValueError(f"num_per_class must be positive, got {num_per_class}")
    fine_to_coarse = hierarchical_fine_to_coarse(num_superclasses, classes_per_superclass)
    num_classes = len(fine_to_coarse)
    proto_rng, class_rng, sample_rng = _rngs(seed, 3)
    prototypes = _smooth_patterns(proto_rng, num_superclasses, image_shape, grid=4)
    patterns = _smooth_patterns(class_rng, num_classes, image_shape, grid=8)
    means = prototypes[fine_to_coarse] + class_scale * patterns
    y = sample_rng.permutation(np.repeat(np.arange(num_classes, dtype=np.int64), num_per_class))
    x = means[y] + noise * sample_rng.standard_normal((len(y), *image_shape))
    return x.astype(np.float32), y, fine_to_coarse[y]


# --------------------------------------------------------------------------------------------
# Two interlocking arcs
# --------------------------------------------------------------------------------------------

#: Radius of both arcs.
ARC_RADIUS = 0.6
#: Centres of arc 0 (upper half circle) and arc 1 (lower half circle): the two half-moons of
#: `sklearn.datasets.make_moons`, scaled by 0.6 and centred on the origin.
ARC_CENTERS = np.array([[-0.3, -0.15], [0.3, 0.15]])
# Angle ranges: arc 0 spans [0, pi] (upper half), arc 1 spans [pi, 2 pi] (lower half).
_ARC_ANGLES = ((0.0, np.pi), (np.pi, 2 * np.pi))


def _distance_to_arc(points: np.ndarray, center: np.ndarray, start: float) -> np.ndarray:
    """Euclidean distance from points [N, 2] to the half circle of angles [start, start+pi]."""
    d = points - center
    rho = np.hypot(d[:, 0], d[:, 1])
    # Angle relative to the arc's start, in [0, 2 pi).
    theta = np.mod(np.arctan2(d[:, 1], d[:, 0]) - start, 2 * np.pi)
    on_arc = np.abs(rho - ARC_RADIUS)
    ends = [center + ARC_RADIUS * np.array([np.cos(a), np.sin(a)]) for a in (start, start + np.pi)]
    to_ends = np.minimum(*(np.hypot(*(points - e).T) for e in ends))
    # Within the arc's angular range the nearest circle point is on the arc; outside it the
    # distance to circle points grows with the angle, so the nearest is an end point.
    return np.where(theta <= np.pi, on_arc, to_ends)


def two_arcs_distances(x: np.ndarray) -> np.ndarray:
    """Distance of each point [N, 2] to arc 0 and to arc 1: float64 [N, 2].

    Example:
        >>> two_arcs_distances(np.array([[-0.3, 0.45]])).round(3).tolist()  # top of arc 0
        [[0.0, 0.3]]
    """
    x = np.asarray(x, np.float64).reshape(-1, 2)
    arcs = zip(ARC_CENTERS, _ARC_ANGLES, strict=True)
    return np.stack([_distance_to_arc(x, center, angles[0]) for center, angles in arcs], axis=1)


def two_arcs_labels(x: np.ndarray) -> np.ndarray:
    """The labelling rule: 1 where arc 1 is strictly nearer than arc 0, else 0.

    The boundary is the set of points equidistant from both arcs; it passes through the
    origin (the arcs are point-symmetric about it).

    Example:
        >>> two_arcs_labels(np.array([[-0.3, 0.45], [0.3, -0.45]])).tolist()
        [0, 1]
    """
    d = two_arcs_distances(x)
    return (d[:, 1] < d[:, 0]).astype(np.int64)


def two_arcs_grid(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Walker's toy set: the n x n grid on [-1, 1]^2 labelled by two interlocking arcs.

    Arc 0 is the upper half circle of radius `ARC_RADIUS` about ``ARC_CENTERS[0]``; arc 1 the
    lower half circle about ``ARC_CENTERS[1]`` (two half-moons). Every grid point gets the
    label of the nearer arc (`two_arcs_labels`). For even ``n`` exactly half the points are in
    each class (the grid and the arcs are symmetric under ``p -> -p``, which swaps labels).

    Args:
        n: Points per side.

    Returns:
        ``(x, y)``: x float32 [n*n, 2], row-major with x[:, 0] varying fastest, labels int64.

    Example:
        >>> x, y = two_arcs_grid(4)
        >>> x[:2].tolist(), y.shape
        ([[-1.0, -1.0], [-0.3333333432674408, -1.0]], (16,))
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    axis = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(axis, axis)
    x = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return x.astype(np.float32), two_arcs_labels(x)


def _boundary_gap(points: np.ndarray) -> np.ndarray:
    d = two_arcs_distances(points)
    return d[:, 0] - d[:, 1]


@functools.lru_cache(maxsize=2)
def _boundary_points(step: float, extent: float) -> np.ndarray:
    """Points on the class boundary: the zeros of d0 - d1 on the edges of a grid of `step`."""
    axis = np.arange(-extent, extent + step / 2, step)
    gx, gy = np.meshgrid(axis, axis)
    grid = np.stack([gx, gy], axis=-1)
    f = _boundary_gap(grid.reshape(-1, 2)).reshape(gx.shape)
    lo, hi = [], []
    for a, b, pa, pb in ((f[:-1], f[1:], grid[:-1], grid[1:]),  # Vertical edges.
                         (f[:, :-1], f[:, 1:], grid[:, :-1], grid[:, 1:])):  # Horizontal.
        crossing = np.signbit(a) != np.signbit(b)
        # Orient each edge so that f < 0 at `lo` and f >= 0 at `hi`.
        neg_first = np.signbit(a[crossing])[:, None]
        lo.append(np.where(neg_first, pa[crossing], pb[crossing]))
        hi.append(np.where(neg_first, pb[crossing], pa[crossing]))
    lo, hi = np.concatenate(lo), np.concatenate(hi)
    # f is continuous but has kinks, so locate each zero by bisection, not interpolation.
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        neg = np.signbit(_boundary_gap(mid))[:, None]
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    return 0.5 * (lo + hi)


def arcs_boundary_distance(x: np.ndarray, resolution: float = 4e-3) -> np.ndarray:
    """Distance from each point to the true class boundary of the two-arcs problem.

    The boundary {p : d(p, arc 0) = d(p, arc 1)} is made of conic and bisector pieces, so it
    is traced numerically: the zero of ``d0 - d1`` on every edge of a grid of step
    ``resolution`` on [-2, 2]^2 that it crosses, located by bisection. Those boundary points
    are at most ``resolution * sqrt(2)`` apart along the boundary, so a distance ``d`` is
    overestimated by at most ``resolution`` (``d`` near 0) and by about
    ``resolution**2 / (4 * d)`` otherwise, for every point whose true distance is below its
    distance to the edge of the square: all of [-1, 1]^2 (distances there are below 1).

    Args:
        x: Points [N, 2].
        resolution: Grid step used to trace the boundary.

    Returns:
        float64 [N] distances (0 on the boundary).

    Example:
        >>> float(arcs_boundary_distance(np.array([[0.0, 0.0]]))[0]) < 1e-3
        True
    """
    x = np.asarray(x, np.float64).reshape(-1, 2)
    boundary = _boundary_points(float(resolution), 2.0)
    out = np.empty(len(x))
    chunk = max(1, (1 << 22) // len(boundary))  # Bound the [chunk, B] distance matrix.
    for s in range(0, len(x), chunk):
        diff = x[s : s + chunk, None, :] - boundary[None, :, :]
        out[s : s + chunk] = np.sqrt(np.min(np.sum(diff * diff, axis=-1), axis=1))
    return out


# --------------------------------------------------------------------------------------------
# Gaussian blobs
# --------------------------------------------------------------------------------------------


def gaussian_blobs(
    num_classes: int = 3,
    num_per_class: int = 100,
    dim: int = 2,
    seed: int = 0,
    spread: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian clusters: class ``k`` is ``N(mu_k, spread^2 I)``, ``mu_k ~ N(0, I)``.

    Raw values; ``data.load("gaussian_blobs")`` standardises each feature with its training
    split's statistics.

    Args:
        num_classes: Number of clusters (classes).
        num_per_class: Examples per class.
        dim: Dimension of the points.
        seed: Seed; the means depend only on it, ``num_classes`` and ``dim``.
        spread: Standard deviation of each cluster around its mean.

    Returns:
        ``(x, y)``: x float32 [num_classes * num_per_class, dim], labels int64, shuffled.

    Example:
        >>> x, y = gaussian_blobs(3, 10, 5, seed=0)
        >>> x.shape, np.bincount(y).tolist()
        ((30, 5), [10, 10, 10])
    """
    if num_classes < 1 or num_per_class < 1 or dim < 1:
        raise ValueError("num_classes, num_per_class and dim must be positive")
    mean_rng, sample_rng = _rngs(seed, 2)
    means = mean_rng.standard_normal((num_classes, dim))
    y = sample_rng.permutation(np.repeat(np.arange(num_classes, dtype=np.int64), num_per_class))
    x = means[y] + spread * sample_rng.standard_normal((len(y), dim))
    return x.astype(np.float32), y


# --------------------------------------------------------------------------------------------
# Synthetic text
# --------------------------------------------------------------------------------------------


def text_indicative_tokens(num_classes: int, tokens_per_class: int = 3) -> np.ndarray:
    """Token ids indicating each class in `synthetic_text`: int64 [num_classes, tokens_per_class].

    Class ``c`` is indicated by ids ``1 + c * tokens_per_class`` ... ``(c + 1) *
    tokens_per_class``; higher ids are neutral.

    Example:
        >>> text_indicative_tokens(2, 3).tolist()
        [[1, 2, 3], [4, 5, 6]]
    """
    return 1 + np.arange(num_classes * tokens_per_class, dtype=np.int64).reshape(
        num_classes, tokens_per_class
    )


def synthetic_text(
    num_examples: int = 1000,
    vocab_size: int = 100,
    sequence_length: int = 32,
    num_classes: int = 2,
    seed: int = 0,
    tokens_per_class: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length token sequences whose label is the class with most indicative tokens.

    Each sequence has a length drawn uniformly in [max(4, sequence_length // 4),
    sequence_length] and is right-padded with 0. Labels are balanced (as far as
    ``num_examples`` allows). A sequence of class ``c`` holds ``k`` tokens from class ``c``'s
    indicative set (`text_indicative_tokens`), ``1 <= k <= max(1, length // 4)``, fewer than
    ``k`` from each other class's set, and neutral tokens elsewhere, in random positions. So
    the label is a function of the tokens: ``argmax_c count(tokens in set c)``, with a strict
    maximum; a bag-of-tokens model (the transformer's pooled embedding) can learn it.

    Args:
        num_examples: Number of sequences.
        vocab_size: Token ids are in [0, vocab_size); must exceed
            ``1 + num_classes * tokens_per_class`` so neutral tokens exist.
        sequence_length: Padded length (at least 4).
        num_classes: Number of classes.
        seed: Seed of everything random.
        tokens_per_class: Size of each class's indicative token set.

    Returns:
        ``(tokens, y)``: tokens int32 [num_examples, sequence_length], labels int64.

    Example:
        >>> tokens, y = synthetic_text(6, vocab_size=20, sequence_length=8, seed=0)
        >>> tokens.shape, tokens.dtype.name, sorted(set(y.tolist()))
        ((6, 8), 'int32', [0, 1])
    """
    first_neutral = 1 + num_classes * tokens_per_class
    if vocab_size <= first_neutral:
        raise ValueError(
            f"vocab_size ({vocab_size}) must exceed 1 + num_classes * tokens_per_class "
            f"({first_neutral}) so that neutral tokens exist"
        )
    if sequence_length < 4:
        raise ValueError(f"sequence_length must be at least 4, got {sequence_length}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    rng = np.random.default_rng(seed)
    indicative = text_indicative_tokens(num_classes, tokens_per_class)
    y = rng.permutation(np.arange(num_examples, dtype=np.int64) % num_classes)
    tokens = np.zeros((num_examples, sequence_length), np.int32)
    min_length = max(4, sequence_length // 4)
    for i, label in enumerate(y):
        length = int(rng.integers(min_length, sequence_length + 1))
        k = int(rng.integers(1, max(1, length // 4) + 1))
        # Other classes get fewer than k each; the budget keeps the total within `length`.
        others = rng.integers(0, k, size=num_classes)
        others[label] = k
        while others.sum() > length:
            others[np.argmax(np.where(np.arange(num_classes) == label, -1, others))] -= 1
        seq = [rng.choice(indicative[c], size=int(n)) for c, n in enumerate(others)]
        fill = length - int(others.sum())
        seq.append(rng.integers(first_neutral, vocab_size, size=fill))
        tokens[i, :length] = rng.permutation(np.concatenate(seq))
    return tokens, y
