"""Matplotlib figures of stiffness results, drawn without pyplot.

One module per kind of figure: `matrices` (class and super-class matrices), `distance`
(stiffness vs distance), `training` (stiffness and xi over training), `neighbourhood` (the
neighbourhood stiffness map), `layerwise` (stiffness through the layers); `style` holds what
they share (a pyplot-free figure, the colours, saving). Every public name is reachable here.

Every function builds a `matplotlib.figure.Figure` with an Agg canvas attached directly, so no
global pyplot state or backend is touched: safe in scripts, tests, notebooks and servers alike.
Every function returns the figure and, when `path` is given, also saves it (format from the
suffix: .png, .pdf or .svg; raster at `DPI` dots per inch), creating parent directories and
writing atomically (temporary file in the same directory, then `os.replace`), so a reader never
sees a half-written image.

Stiffness is shown with a diverging colour map centred on zero (blue negative, red positive,
`vmin == -vmax`); NaN (no pairs, undefined) is drawn light grey.

The inputs are plain numpy arrays, or duck-typed result objects read with `getattr` (curves with
`edges`, `centres`, `means`, `counts`, `pairs`; critical lengths with `xi`, `status`, `bound`).
Mappings with the same keys work too. Plotting never computes stiffness: it only draws.

Example:
    >>> import numpy as np
    >>> from tfstiffness import plots
    >>> fig = plots.class_matrix(np.array([[0.8, -0.1], [-0.1, 0.6]]), class_names=["a", "b"])
    >>> fig.axes[0].get_title()
    'Class stiffness'
"""


from tfstiffness.outputs.plots.distance import stiffness_vs_distance
from tfstiffness.outputs.plots.layerwise import layerwise_curves
from tfstiffness.outputs.plots.matrices import class_matrix, superclass_matrix
from tfstiffness.outputs.plots.neighbourhood import neighbourhood_map
from tfstiffness.outputs.plots.style import (
    DPI,
    NAN_COLOUR,
    diverging_cmap,
    save_figure,
    symmetric_norm,
)
from tfstiffness.outputs.plots.training import training_curves

__all__ = [
    "DPI",
    "NAN_COLOUR",
    "class_matrix",
    "diverging_cmap",
    "layerwise_curves",
    "neighbourhood_map",
    "save_figure",
    "stiffness_vs_distance",
    "superclass_matrix",
    "symmetric_norm",
    "training_curves",
]
