"""The engine: exact Gram matrices of per-example loss gradients.

Imports run one way, top to bottom:

- `gram`: the public entry (`gradient_gram`, `GradientGram`, `METHODS`).
- `run`: the interface the rest of the package uses to drive the engine: `prepare_run`
  (validate the inputs, resolve the loss, choose the factor source and the block size) gives
  a `GramRun`; `GramRun.blocks()` yields Gram blocks in a fixed order (`local_steps()` a
  worker's share on a cluster) and `GramRun.num_block_pairs` counts them; `GramRun.cache_bytes`
  is its budget of cached row factors; `check_finite_block` and `Progress` serve every loop
  over blocks.
- `memory`: the budgets (cached factors, generic blocks) as shares of the free memory of
  the device the computation runs on (a GPU's limit minus what TensorFlow holds, or the
  host's available memory), capped at the sizes measured best here.
- `tiling`: bands of row blocks against streamed column blocks (`gram_blocks`, `local_steps`,
  `BlockFactors`, `gram_block`, `num_block_pairs`), locally or over tf.distribute replicas.
- factor sources: `_ghost` (one batched forward and backward, per-layer `rules/`) and `_generic`
  (vmap / jacobian); both yield `_factors` (compact per-example gradients).
- `losses` (per-example losses as Keras computes them), `_validation` (inputs against the
  model), `_precision` (float32 compute for mixed-precision models), `structure` (nested inputs
  as Keras takes them) and `layer_keys` (the names of per-layer results); the last two are pure
  Python and numpy, so the measures and probes use them without TensorFlow.

This file imports only `environment` (the standard library), which checks the installed
TensorFlow, Keras and Keras backend before any engine module loads them, and raises
`UnsupportedEnvironmentError` saying what is installed and what is needed; so
`tfstiffness.engine.structure` still loads without TensorFlow.
"""

from tfstiffness.engine import environment

environment.check()
