"""The radioimg-multilabel label set and the benchmark classes derived from it.

One definition for the simulator, the dataset builders, the nano recipe and the benchmarks: the 11
labels of the paper's radioimg-multilabel data, and the B5 peculiarity class a label set implies
(PECULIAR when marked so, COMPLEX when it holds extended or diffuse emission, else ORDINARY).
"""

from __future__ import annotations

MULTILABELS = ("BACKGROUND", "COMPACT", "EXTENDED", "RADIO-GALAXY", "DIFFUSE", "DIFFUSE-LARGE",
               "FILAMENT", "ARTIFACT", "PECULIAR", "MOSAICKING", "BORDER")
PECULIARITY = ("ORDINARY", "COMPLEX", "PECULIAR")
COMPLEX_LABELS = frozenset({"EXTENDED", "RADIO-GALAXY", "DIFFUSE", "DIFFUSE-LARGE", "FILAMENT"})


def peculiarity_of(labels) -> str:
    """B5 class from radioimg-multilabel labels: PECULIAR, COMPLEX (extended/diffuse) or ORDINARY."""
    labels = set(labels)
    if "PECULIAR" in labels:
        return "PECULIAR"
    if labels & COMPLEX_LABELS:
        return "COMPLEX"
    return "ORDINARY"
