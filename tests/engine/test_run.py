"""The engine's interface inside the package (`engine.run`): a prepared run's blocks are what
`gradient_gram` assembles, counted by `num_block_pairs`, named by `layer_key`."""

import itertools

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.models_zoo import ZOO, data_for
from tfstiffness.engine import tiling
from tfstiffness.engine.layer_keys import layer_key
from tfstiffness.engine.run import check_finite_block, default_block_size, prepare_run

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_num_block_pairs_counts_the_block_pairs():
    for n, m, block, one_set in itertools.product((1, 4, 9), (1, 5, 8), (1, 3, 4), (True, False)):
        m = n if one_set else m
        assert tiling.num_block_pairs(n, m, block, one_set) == len(
            tiling.block_pairs(n, m, block, one_set)), (n, m, block, one_set)


@pytest.mark.parametrize("two_sets", [False, True])
def test_a_runs_blocks_assemble_to_gradient_gram(two_sets):
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 11)
    x2, y2 = data_for("dense_net", 6, seed=3) if two_sets else (None, None)
    run = prepare_run(model, x, y, LOSS, x2, y2, "auto", 4, None)
    assert (run.n, run.m, run.block, run.one_set) == (11, 6 if two_sets else 11, 4,
                                                      not two_sets)
    total = np.zeros((run.n, run.m))
    blocks = list(run.blocks())
    for b in blocks:
        check_finite_block(b, run.one_set)
        total[b.rows, b.cols] += b.total
        if b.mirrored:
            total[b.cols, b.rows] += b.total.T
    assert len(blocks) == run.num_block_pairs == 6  # 3 row blocks: 3 * 4 / 2, or 3 x 2
    gram = tfs.gradient_gram(model, x, y, loss=LOSS, x2=x2, y2=y2, by_layer=True)
    np.testing.assert_allclose(total, gram.total, rtol=1e-5, atol=1e-6)
    assert list(gram.by_layer) == list(run.prepared.layer_keys) == list(
        dict.fromkeys(layer_key(v) for v in model.trainable_variables))


def test_the_default_block_size_is_the_runs():
    model = ZOO["dense_net"]()
    x, y = data_for("dense_net", 9)
    run = prepare_run(model, x, y, LOSS, None, None, "vmap", None, None)
    assert run.block == default_block_size(model, "vmap", 9) == 9
    assert run.prepared.method == "vmap"
