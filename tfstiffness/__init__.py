"""tfstiffness: stiffness (per-example gradient alignment) of TensorFlow 2 / Keras 3 models.

The core: `gradient_gram` computes exact Gram matrices of per-example loss gradients; the
measures turn them into sign and cosine stiffness, class matrices, distance curves and the
critical length; `alignment` reads the gradient-alignment family (m-coherence, gradient
diversity and confusion) from the same matrices, `uncertainty` gives bootstrap intervals and
`influence` TracIn scores along training. Submodules: `models`, `data`, `synthetic`, `plots`, `summary`, `probes`,
`studies`.

Every name is imported on first use (PEP 562): ``import tfstiffness`` does not import
TensorFlow, so the command-line binaries can quieten TensorFlow's start-up logging before
it loads, and tensorflow-datasets and matplotlib load only when needed.
"""

import importlib
import warnings

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "StiffnessCallback": "callback",
    "load_history": "callback",
    "GradientGram": "engine.gram",
    "gradient_gram": "engine.gram",
    "LayerStiffness": "measures.layerwise",
    "layerwise_stiffness": "measures.layerwise",
    "CriticalLength": "measures.distance_curves",
    "StiffnessCurve": "measures.distance_curves",
    "class_stiffness": "measures.stiffness",
    "count_zero_gradients": "measures.stiffness",
    "critical_length": "measures.distance_curves",
    "input_distances": "measures.input_space",
    "stiffness_matrix": "measures.stiffness",
    "stiffness_vs_distance": "measures.distance_curves",
    "superclass_contrast": "measures.stiffness",
    "superclass_matrix": "measures.stiffness",
    "superclass_order": "measures.stiffness",
    "within_between": "measures.stiffness",
    "BoundaryAUC": "measures.neighbourhood",
    "NeighbourhoodStiffness": "measures.neighbourhood",
    "boundary_auc": "measures.neighbourhood",
    "neighbourhood_stiffness": "measures.neighbourhood",
    "roc_auc": "measures.neighbourhood",
    "StiffnessSummary": "streaming",
    "stiffness_summary": "streaming",
    "AlignmentStatistics": "measures.alignment",
    "alignment_statistics": "measures.alignment",
    "class_m_coherence": "measures.alignment",
    "gradient_confusion": "measures.alignment",
    "gradient_diversity": "measures.alignment",
    "m_coherence": "measures.alignment",
    "train_val_alignment": "measures.alignment",
    "BootstrapInterval": "measures.uncertainty",
    "bootstrap": "measures.uncertainty",
    "TracInAccumulator": "influence.tracin",
    "TracInCallback": "influence.callback",
    "TracInResult": "influence.tracin",
    "tracin": "influence.tracin",
    "register_rule": "engine.rules",
    "CommandError": "errors",
    "ConfigMismatchError": "errors",
    "CorruptFileError": "errors",
    "DatasetUnavailableError": "errors",
    "NonFiniteGradientError": "errors",
    "NonFiniteWeightsError": "errors",
    "OutputDirBusyError": "errors",
    "OutputDirError": "errors",
    "StudyInputError": "errors",
    "UnsupportedEnvironmentError": "errors",
    "WorkerLostError": "errors",
}

# Submodules reachable as attributes (`tfs.data`, `tfs.plots`, ...) -> where they live.
_SUBMODULES = {
    "cifar100_labels": "data.cifar100_labels",
    "data": "data",
    "errors": "errors",
    "models": "models",
    "plots": "outputs.plots",
    "probes": "probes",
    "rules": "engine.rules",
    "run_directory": "outputs.run_directory",
    "studies": "studies",
    "synthetic": "data.synthetic",
    "tensorboard": "outputs.tensorboard",
}
# Old names of renamed submodules: they still work, with a DeprecationWarning (see CHANGELOG.md).
_RENAMED = {"experiment": "run_directory", "summary": "tensorboard"}


def _check_environment(module: str) -> None:
    # TensorFlow, Keras and the backend are checked before a public name loads them;
    # catching an error never loads, or checks, anything.
    if module != "errors":
        from tfstiffness.engine import environment

        environment.check()


def __getattr__(name: str):
    if name in _EXPORTS or name in _SUBMODULES:
        _check_environment(_EXPORTS.get(name) or _SUBMODULES[name])
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"tfstiffness.{_EXPORTS[name]}"), name)
        globals()[name] = value  # Later look-ups skip this function.
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"tfstiffness.{_SUBMODULES[name]}")
    if name in _RENAMED:
        warnings.warn(f"tfstiffness.{name} is now tfstiffness.{_RENAMED[name]} "
                      f"(tfstiffness.{_SUBMODULES[_RENAMED[name]]}); the old name goes in 0.3.",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(f"tfstiffness.{_SUBMODULES[_RENAMED[name]]}")
    raise AttributeError(f"module 'tfstiffness' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES) | set(_RENAMED))


__all__ = [*_EXPORTS, *_SUBMODULES, *_RENAMED]  # noqa: PLE0604 (strings: the keys above)
