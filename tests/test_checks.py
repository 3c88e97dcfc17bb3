"""The shared argument checks: what each accepts, and the message that names what it refuses."""

import re
import subprocess
import sys

import numpy as np
import pytest

from tfstiffness import checks

# ------------------------------------------------------------------------------ integers


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_positive_int_accepts_python_and_numpy_integers(value):
    result = checks.positive_int(value, "block_size")
    assert result == int(value) and type(result) is int
    assert checks.is_positive_int(value) and checks.is_int(value)


@pytest.mark.parametrize("value", [0, -2, 2.0, 1.5, "3", True, False, None, np.float64(4.0)])
def test_positive_int_refuses_the_rest_naming_the_argument(value):
    assert not checks.is_positive_int(value)
    with pytest.raises(ValueError, match=rf"^workers: expected a positive integer, got "
                                         rf"{re.escape(repr(value))}\.$"):
        checks.positive_int(value, "workers")


def test_positive_int_with_none_allowed():
    assert checks.positive_int(None, "block_size", allow_none=True) is None
    assert checks.positive_int(4, "block_size", allow_none=True) == 4
    with pytest.raises(ValueError, match=r"^block_size: expected a positive integer or None, "
                                         r"got 0\.$"):
        checks.positive_int(0, "block_size", allow_none=True)


def test_is_int_leaves_bools_out():
    assert checks.is_int(0) and checks.is_int(np.int32(-1))
    assert not checks.is_int(True) and not checks.is_int(np.bool_(True))
    assert not checks.is_int(1.0)


# -------------------------------------------------------------------------------- arrays


def test_finite_array_names_the_count_and_the_first_bad_index():
    values = np.ones((3, 4))
    assert checks.finite_array(values, "gram") is values
    values[2, 1] = np.nan
    values[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"^gram holds 2 non-finite value\(s\) \(NaN or inf\), "
                                         r"the first at index \(2, 1\): measures of non-finite "
                                         r"values are undefined\."):
        checks.finite_array(values, "gram")
    with pytest.raises(ValueError, match=r"^sq_norms holds 1 non-finite value\(s\).*index 1:"):
        checks.finite_array([0.0, np.inf], "sq_norms")


def test_float_matrix():
    matrix = checks.float_matrix([[1, 2], [3, 4]], "S")
    assert matrix.dtype == np.float64 and matrix.shape == (2, 2)
    with pytest.raises(ValueError, match=r"^S must be a 2-D matrix, got shape \(3,\)$"):
        checks.float_matrix(np.ones(3), "S")


def test_squared_norms():
    norms = checks.squared_norms([1, 0, 2.5], 3, "sq_norms")
    assert norms.dtype == np.float64 and norms.tolist() == [1.0, 0.0, 2.5]
    with pytest.raises(ValueError, match=r"^sq_norms2 must have shape \(3,\), one squared norm "
                                         r"per example, got \(2,\)$"):
        checks.squared_norms([1.0, 2.0], 3, "sq_norms2")
    with pytest.raises(ValueError, match=r"^row_sq_norms holds 1 non-finite value"):
        checks.squared_norms([1.0, np.nan], 2, "row_sq_norms")
    with pytest.raises(ValueError, match="^sq_norms holds squared norms, which cannot be "
                                         "negative$"):
        checks.squared_norms([1.0, -1e-9], 2, "sq_norms")


# ---------------------------------------------------------------------------- class labels


def test_class_indices_take_integer_classes_as_they_are():
    labels = checks.class_indices(np.array([2, 0, 1], np.int32), "labels", 3)
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, 1]
    assert checks.class_indices(np.array([], np.float64), "labels").size == 0
    with pytest.raises(ValueError, match=r"^labels must be a 1-D array of integer classes "
                                         r"\(argmax one-hot labels first\), got shape \(3, 3\)$"):
        checks.class_indices(np.eye(3, dtype=int), "labels")
    with pytest.raises(ValueError, match="^labels must hold integers, got dtype float64$"):
        checks.class_indices(np.array([0.0, 1.0]), "labels")
    with pytest.raises(ValueError, match="^labels2 has 2 entries but S has 3 columns$"):
        checks.class_indices(np.array([0, 1]), "labels2", 3, "columns")


@pytest.mark.parametrize("y, expected", [
    (np.array([2, 0, 1]), [2, 0, 1]),
    (np.array([[2], [0]]), [2, 0]),
    (np.array([1.0, 3.0]), [1, 3]),
    (np.array([[0, 1, 0], [1, 0, 0]], np.float32), [1, 0]),
    (np.array([True, False]), [1, 0]),
    ([0, 2], [0, 2]),
])
def test_class_labels_turn_integer_or_one_hot_labels_into_classes(y, expected):
    labels = checks.class_labels(y, "y")
    assert labels.dtype == np.int64 and labels.tolist() == expected


def test_class_labels_refuse_what_is_no_class():
    with pytest.raises(TypeError, match=r"^y: expected integer class labels, got <U3 values; "
                                        r"map class names to integer ids first\.$"):
        checks.class_labels(np.array(["cat", "dog"]), "y")
    with pytest.raises(ValueError, match=r"^probe_y: expected integer class labels or one-hot "
                                         r"labels, got float64 values that are not whole"):
        checks.class_labels(np.array([0.5, 1.0]), "probe_y")
    with pytest.raises(ValueError, match=r"^val_y: expected \[N\] class labels or \[N, K\] "
                                         r"one-hot labels, got shape \(2, 2, 2\)\.$"):
        checks.class_labels(np.zeros((2, 2, 2)), "val_y")
    with pytest.raises(ValueError, match=r"got shape \(\)\.$"):
        checks.class_labels(np.array(3), "y")


# ----------------------------------------------------------------------- number of classes


def test_num_classes_from_the_labels_or_as_given():
    assert checks.num_classes(None, np.array([0, 2])) == 3
    assert checks.num_classes(None, np.array([0, 1]), np.array([4])) == 5
    assert checks.num_classes(None, np.array([], np.int64), np.array([1])) == 2
    value = checks.num_classes(np.int64(6), np.array([0, 1]))
    assert value == 6 and type(value) is int


def test_num_classes_wrong_type_is_a_type_error_and_wrong_value_a_value_error():
    labels = np.array([0, 1])
    for value in (2.0, True, "3"):
        with pytest.raises(TypeError, match=rf"^num_classes must be a positive int, got "
                                            rf"{re.escape(repr(value))}$"):
            checks.num_classes(value, labels)
    for value in (0, -1):
        with pytest.raises(ValueError, match=rf"^num_classes must be a positive int, got "
                                             rf"{value}$"):
            checks.num_classes(value, labels)
    with pytest.raises(ValueError, match="^num_classes is needed when there are no labels$"):
        checks.num_classes(None, np.array([], np.int64))


def test_num_classes_checks_every_label_and_names_the_set():
    with pytest.raises(ValueError, match=r"^y must lie in \[0, 2\), got values from 0 to 2 "
                                         r"\(num_classes: 2 is too small for labels up to 2; "
                                         r"pass num_classes >= 3 or None\)$"):
        checks.num_classes(2, np.array([0, 2]), names=("y", "y2"))
    with pytest.raises(ValueError, match=r"^col_labels must lie in \[0, 3\), got values from "
                                         r"-1 to 0$"):
        checks.num_classes(None, np.array([0, 2]), np.array([-1, 0]),
                           names=("row_labels", "col_labels"))
    checks.label_range(np.array([], np.int64), 1, "labels")  # nothing to refuse


def test_checks_import_no_tensorflow():
    code = ("import sys; import tfstiffness.checks; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
