"""CIFAR-100 class names and the fine-to-coarse (super-class) table.

The fine labels are numbered in alphabetical order of their names, as in the original
``fine_label_names.txt`` shipped with CIFAR-100 and as ``tfds.load("cifar100")`` and
``keras.datasets.cifar100`` number them; the 20 coarse labels likewise follow
``coarse_label_names.txt``. Each super-class holds exactly five fine classes.

The table lives in the package rather than being derived from data because mocked data sets
(``tfds.testing.mock_data``) draw fine and coarse labels independently at random.

Example:
    >>> from tfstiffness.data.cifar100_labels import COARSE_NAMES, FINE_NAMES, FINE_TO_COARSE
    >>> FINE_NAMES[0], COARSE_NAMES[int(FINE_TO_COARSE[0])]
    ('apple', 'fruit_and_vegetables')
    >>> [FINE_NAMES[i] for i in fine_classes_of(COARSE_NAMES.index("people"))]
    ['baby', 'boy', 'girl', 'man', 'woman']
"""

from __future__ import annotations

import numpy as np

# Super-class -> its five fine classes, as listed on the CIFAR web page. The super-classes
# appear in coarse-label order; FINE_TO_COARSE is built from this listing below.
_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}

#: The 20 coarse (super-class) names, indexed by coarse label.
COARSE_NAMES: tuple[str, ...] = tuple(_SUPERCLASSES)

#: The 100 fine class names, indexed by fine label (alphabetical order).
FINE_NAMES: tuple[str, ...] = tuple(sorted(n for names in _SUPERCLASSES.values() for n in names))

#: ``FINE_TO_COARSE[fine_label]`` is the coarse label; int64 array of shape [100].
FINE_TO_COARSE: np.ndarray = np.array(
    [
        coarse
        for fine in FINE_NAMES
        for coarse, members in enumerate(_SUPERCLASSES.values())
        if fine in members
    ],
    dtype=np.int64,
)
FINE_TO_COARSE.setflags(write=False)  # A shared constant: nobody may edit it in place.


def fine_classes_of(coarse: int) -> np.ndarray:
    """Returns the five fine labels of one super-class, ascending.

    Args:
        coarse: A coarse label in [0, 20).

    Returns:
        int64 array of shape [5].

    Example:
        >>> fine_classes_of(0).tolist()
        [4, 30, 55, 72, 95]
    """
    if not 0 <= coarse < len(COARSE_NAMES):
        raise ValueError(f"coarse label must be in [0, {len(COARSE_NAMES)}), got {coarse}")
    return np.flatnonzero(FINE_TO_COARSE == coarse)
