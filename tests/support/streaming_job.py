"""A streaming run for subprocess tests: `python -m tests.support.streaming_job OUT.npz [CHECKPOINT]`.

With `--two-devices` it splits the CPU into two logical devices and compares
MirroredStrategy against no strategy instead.
"""

import sys
import warnings

import tensorflow as tf


def model_and_data(n=48):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def main(argv):
    if argv[1] == "--two-devices":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    import tfstiffness as tfs

    warnings.simplefilter("ignore")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model, x, y = model_and_data()
    if argv[1] == "--two-devices":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        # The strategy first, on a fresh model: nothing traced or checked beforehand.
        spread = tfs.gradient_gram(model, x, y, loss=loss, x2=x[:10], y2=y[:10], batch_size=8,
                                   strategy=strategy)
        plain = tfs.gradient_gram(model, x, y, loss=loss, x2=x[:10], y2=y[:10], batch_size=8)
        s_plain = tfs.stiffness_summary(model, x, y, loss=loss, block_size=8)
        s_spread = tfs.stiffness_summary(model, x, y, loss=loss, block_size=8, strategy=strategy)
        gram_err = np.abs(plain.total - spread.total).max() / np.abs(plain.total).max()
        c_err = np.nanmax(np.abs(s_plain.class_matrix["cosine"] - s_spread.class_matrix["cosine"]))
        print("ERRORS", gram_err, c_err)
        return
    summary = tfs.stiffness_summary(model, x, y, loss=loss, block_size=4, radius=3.0,
                                    checkpoint=argv[2] if len(argv) > 2 else None,
                                    checkpoint_every=0.0)
    np.savez(argv[1], cosine=summary.class_matrix["cosine"], sign=summary.class_matrix["sign"],
             curve=summary.distance_curve["cosine"].means,
             neighbourhood=summary.neighbourhood["cosine"], resumed=summary.blocks_resumed)


if __name__ == "__main__":
    main(sys.argv)
