"""Every label set of the project, and the one way to spell a label.

One definition for the simulator, the dataset builders, the nano recipe and the benchmarks: the 11
labels of the paper's radioimg-multilabel data and the B5 peculiarity class a label set implies
(PECULIAR when marked so, COMPLEX when it holds extended or diffuse emission, else ORDINARY); the
source morphologies (islands-peaks); the FR classes; the box classes of the annotated catalogues
(Caesar source classes, radio-galaxy catalogue classes); and ``canonical_label`` for what users and
files write ("FRI", "artefact", "1c1p", "Radio galaxy").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

MULTILABELS = ("BACKGROUND", "COMPACT", "EXTENDED", "RADIO-GALAXY", "DIFFUSE", "DIFFUSE-LARGE",
               "FILAMENT", "ARTIFACT", "PECULIAR", "MOSAICKING", "BORDER")
PECULIARITY = ("ORDINARY", "COMPLEX", "PECULIAR")
COMPLEX_LABELS = frozenset({"EXTENDED", "RADIO-GALAXY", "DIFFUSE", "DIFFUSE-LARGE", "FILAMENT"})
SMORPH = ("1C-1P", "1C-2P", "1C-3P", "2C-2P", "2C-3P", "3C-3P")     # components-peaks (B2)
FR = ("FR-I", "FR-II")                                                # Fanaroff–Riley (B6)
CAESAR_CLASSES = ("SPURIOUS", "COMPACT", "EXTENDED", "EXTENDED-MULTISLAND", "FLAGGED")
RGCAT_CLASSES = ("C", "FR-I", "FR-II", "FR-X", "R", "PEC")           # radio-galaxy catalogue classes
BOX_CLASSES = CAESAR_CLASSES + RGCAT_CLASSES + ("RADIO-GALAXY",)     # every class a box may have
SIMULATED_BOX_CLASSES = ("COMPACT", "EXTENDED", "EXTENDED-MULTISLAND", "SPURIOUS")   # what the simulator draws

# other spellings → the canonical label (keys without spaces, underscores or case)
ALIASES = {"ARTEFACT": "ARTIFACT", "ARTEFACTS": "ARTIFACT", "ARTIFACTS": "ARTIFACT",
           "FRI": "FR-I", "FR1": "FR-I", "FR-1": "FR-I", "FRII": "FR-II", "FR2": "FR-II", "FR-2": "FR-II",
           "FRX": "FR-X", "RADIOGALAXY": "RADIO-GALAXY", "DIFFUSELARGE": "DIFFUSE-LARGE",
           "EXTENDEDMULTISLAND": "EXTENDED-MULTISLAND"}


def canonical_label(label) -> str:
    """A label as the project writes it: upper case, words joined by "-", morphologies as "1C-2P",
    known aliases resolved ("FRI" and "fr1" → "FR-I", "artefact" → "ARTIFACT")."""
    s = re.sub(r"[\s_]+", "-", str(label).strip().upper())
    m = re.fullmatch(r"(\d)C-?(\d)P", s)
    if m:
        return f"{m.group(1)}C-{m.group(2)}P"
    return ALIASES.get(s, ALIASES.get(s.replace("-", ""), s))


def peculiarity_of(labels) -> str:
    """B5 class from radioimg-multilabel labels: PECULIAR, COMPLEX (extended/diffuse) or ORDINARY."""
    labels = set(labels)
    if "PECULIAR" in labels:
        return "PECULIAR"
    if labels & COMPLEX_LABELS:
        return "COMPLEX"
    return "ORDINARY"


@dataclass(kw_only=True)
class Truth:
    """What is known of one image, in the label sets above; None: not known (no question about it).

    The dataset builder's records and the question writer's facts both carry it (they subclass it)."""

    labels: tuple[str, ...] | None = None        # radioimg-multilabel labels
    peculiarity: str | None = None               # PECULIARITY
    smorph: str | None = None                    # SMORPH
    fr_class: str | None = None                  # FR
    border: bool | None = None                   # blank (NaN) border
    artefact: bool | None = None                 # imaging artefacts present
    radio_galaxy: bool | None = None

    def truth(self) -> dict:
        """The truth fields alone, as keywords (to hand them to another Truth)."""
        return {f.name: getattr(self, f.name) for f in fields(Truth)}
