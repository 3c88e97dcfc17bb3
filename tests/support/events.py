"""Reading TensorBoard event files back in tests."""

from pathlib import Path

import tensorflow as tf


def scalar_events(run_dir):
    """tag -> [(step, value)] over every event file of a TensorBoard run directory, in file
    order (value None for a summary that is not a scalar)."""
    tags = {}
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = (float(tf.make_ndarray(value.tensor))
                          if value.metadata.plugin_data.plugin_name == "scalars" else None)
                tags.setdefault(value.tag, []).append((event.step, number))
    return tags
