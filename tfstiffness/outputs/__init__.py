"""What a run leaves behind: its output directory, TensorBoard events and figures.

- `run_directory`: the output directory (lock, config guard, atomic files, stage checkpoints).
- `tensorboard`: scalars, histograms and images written as TensorBoard events.
- `plots`: every matplotlib figure of the package.
- `atomic`: atomic file writes and the one checked `.npz` reader.

Outputs never compute a measure: they draw and write what the measures return.
"""
