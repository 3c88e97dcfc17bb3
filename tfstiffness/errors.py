"""Every error the package raises on purpose, in one place (and exported as `tfs.<Name>`).

Each is a subclass of the built-in error a caller would catch anyway (ValueError for bad
inputs, RuntimeError for an environment that fails), so code catching those keeps working.
This module imports nothing: catching an error never loads TensorFlow.
"""


class NonFiniteGradientError(ValueError):
    """Some examples' loss gradients are NaN or inf (the model or loss overflows on them)."""


class NonFiniteWeightsError(ValueError):
    """A model variable holds NaN or inf: every loss and gradient of the model is undefined."""


class StudyInputError(ValueError):
    """A study's arguments or data cannot be used; raised before anything is written."""


class ConfigMismatchError(ValueError):
    """An output directory holds results of a different configuration."""


class OutputDirError(ValueError):
    """An output directory cannot be used: not a directory, not writable, or in use."""


class OutputDirBusyError(OutputDirError):
    """Another live run holds the output directory's lock."""


class CorruptFileError(OutputDirError):
    """A file of an output directory cannot be read back (damaged outside this toolkit)."""


class DatasetUnavailableError(RuntimeError):
    """A tfds data set is neither in ``data_dir`` nor downloadable (e.g. no network).

    The message names the data set and the directory searched, and says how to place the
    files there; a tfds error behind it is chained as ``__cause__``.

    Attributes:
        name: The data set.
        split: The split asked for.
        data_dir: The directory searched.
        reason: Why it is not there and not downloadable.
    """

    def __init__(self, message: str, *, name: str = "", split: str = "", data_dir: str = "",
                 reason: str = ""):
        super().__init__(message)
        self.name, self.split, self.data_dir, self.reason = name, split, data_dir, reason


class WorkerLostError(RuntimeError):
    """A collective exchange between workers failed: another worker stopped or restarted."""


class UnsupportedEnvironmentError(ImportError):
    """TensorFlow, Keras or the Keras backend is missing or of a version tfstiffness does not
    support (tfstiffness.engine.environment checks them before the engine loads TensorFlow)."""


class CommandError(Exception):
    """A bad command line (a combination of flags): printed as one line, exit status 2."""


__all__ = ["CommandError", "ConfigMismatchError", "CorruptFileError", "DatasetUnavailableError",
           "NonFiniteGradientError", "NonFiniteWeightsError", "OutputDirBusyError",
           "OutputDirError", "StudyInputError", "UnsupportedEnvironmentError", "WorkerLostError"]
