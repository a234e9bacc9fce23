"""Read model answers: class labels, Yes/No, and bounding boxes.

Nothing is dropped silently: an answer that cannot be read comes back with
``parsed=False`` and a one-line ``problem``; a box that is not usable is kept with its
own ``problem`` set.

Box conventions (``convention`` argument):

- ``yolo`` (radio-llava): ``[x_center, y_center, width, height]`` normalised to 0..1,
  y from the picture's top; several boxes joined by ", ".
- ``qwen`` (Qwen2-VL): corners ``(x1,y1),(x2,y2)`` on a 0..1000 grid, optionally wrapped
  in ``<|box_start|>...<|box_end|>`` and preceded by
  ``<|object_ref_start|>label<|object_ref_end|>``. Bracketed ``[x1, y1, x2, y2]``
  groups on the same grid are accepted when no corner pair is found.
- ``pixels``: absolute picture pixels ``[x0, y0, x1, y1]``, y from the picture's top;
  needs ``picture_size=(width, height)``.
- ``resized-pixels`` (Qwen2.5-VL): absolute pixels ``[x1, y1, x2, y2]`` of the picture AS THE
  PROCESSOR RESIZED IT (``smart_resize``: sides multiples of patch × merge, 28), usually JSON
  ``[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]``; needs a ``transform`` that knows that size
  (``Transform.with_input_size``), which maps them back.
- ``xyxy-1000`` (Qwen3-VL, InternVL3): ``[x1, y1, x2, y2]`` on a 0..1000 grid, as JSON
  ``bbox_2d`` (Qwen3-VL) or ``<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>`` (InternVL).
- ``florence-loc`` (Florence-2): ``label<loc_x1><loc_y1><loc_x2><loc_y2>``, 1000 bins; a bin
  stands for its centre, ``(bin + 0.5) / 1000`` (the processor's ``dequantize``).
- ``paligemma-loc`` (PaliGemma): ``<locY1><locX1><locY2><locX2> label``, 1024 bins, y first,
  several detections joined by " ; "; a bin stands for ``bin / 1024``.
- ``none`` (Idefics3, SmolVLM): the family does not ground; a box answer is never parsed.

``BOX_CONVENTIONS`` describes each one (``radiollava model info`` prints it); ``format_boxes``
writes boxes in any of them (training data and tests speak the convention the parser reads).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .tasks import Task

if TYPE_CHECKING:
    from .transform import Transform


@dataclass(frozen=True)
class BoxConvention:
    """How one model family writes a box in its answer."""

    name: str
    order: str          # xcycwh | xyxy | yxyx | ""
    units: str          # what the numbers count: normalised | grid | bins | picture pixels | resized pixels
    scale: float        # grid or bin count (1 for normalised, 0 for pixels)
    syntax: str         # what an answer with two boxes looks like
    description: str


BOX_CONVENTIONS: dict[str, BoxConvention] = {c.name: c for c in [
    BoxConvention("yolo", "xcycwh", "normalised", 1.0, "[0.45, 0.32, 0.05, 0.04], [0.7, 0.1, 0.12, 0.2]",
                  "[x_center, y_center, width, height] normalised to the picture, 2 decimals (radio-llava)"),
    BoxConvention("qwen", "xyxy", "grid", 1000.0,
                  "<|object_ref_start|>COMPACT<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>",
                  "corners (x1,y1),(x2,y2) on 0..1000, optionally in <|box_start|>...<|box_end|> (Qwen2-VL)"),
    BoxConvention("pixels", "xyxy", "picture pixels", 0.0, "[10, 20, 30, 60]",
                  "[x0, y0, x1, y1] absolute pixels of the rendered picture"),
    BoxConvention("resized-pixels", "xyxy", "resized pixels", 0.0,
                  '[{"bbox_2d": [12, 30, 57, 84], "label": "COMPACT"}]',
                  "[x1, y1, x2, y2] absolute pixels of the picture after the processor's smart_resize "
                  "(sides multiples of 28), JSON bbox_2d (Qwen2.5-VL)"),
    BoxConvention("xyxy-1000", "xyxy", "grid", 1000.0,
                  '<ref>COMPACT</ref><box>[[100, 200, 300, 400]]</box> or [{"bbox_2d": [100, 200, 300, 400]}]',
                  "[x1, y1, x2, y2] relative to the picture on 0..1000 (Qwen3-VL JSON bbox_2d, "
                  "InternVL3 <ref>…</ref><box>[[…]]</box>)"),
    BoxConvention("florence-loc", "xyxy", "bins", 1000.0, "COMPACT<loc_100><loc_200><loc_300><loc_400>",
                  "label then <loc_x1><loc_y1><loc_x2><loc_y2>, 1000 bins, a bin is its centre (Florence-2)"),
    BoxConvention("paligemma-loc", "yxyx", "bins", 1024.0, "<loc0204><loc0102><loc0409><loc0307> COMPACT",
                  "<locY1><locX1><locY2><locX2> then the label, 1024 bins, y first, ' ; ' between (PaliGemma)"),
    BoxConvention("none", "", "", 0.0, "", "no grounding: questions and closed-set scores only"),
]}
CONVENTIONS = tuple(BOX_CONVENTIONS)
# How far outside 0..1 a normalised edge may lie and still be valid: radio-llava rounds every
# value to 2 decimals, so a box touching the picture edge can overhang by up to ~0.0075.
TOLERANCE = 0.01
QWEN_GRID = 1000.0
FLORENCE_BINS = 1000
PALIGEMMA_BINS = 1024

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)\b"
_NUM_RE = re.compile(rf"(?<![\w.])(?:{_NUM})", re.IGNORECASE)
_BRACKET_RE = re.compile(r"\[([^\[\]]*)\]")
_QWEN_RE = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>\s*)?"
    r"(?:<\|box_start\|>\s*)?"
    rf"\(\s*(?P<x1>{_NUM})\s*,\s*(?P<y1>{_NUM})\s*\)\s*,?\s*"
    rf"\(\s*(?P<x2>{_NUM})\s*,\s*(?P<y2>{_NUM})\s*\)"
    r"(?:\s*<\|box_end\|>)?",
    re.IGNORECASE | re.DOTALL,
)
_BBOX_KEY_RE = re.compile(r"[\"']?bbox_2d[\"']?\s*:\s*")
_JSON_LABEL_RE = re.compile(r"[\"']label[\"']\s*:\s*\"((?:[^\"\\]|\\.)*)\"")
_INTERNVL_RE = re.compile(r"(?:<ref>(?P<label>.*?)</ref>\s*)?<box>(?P<boxes>.*?)(?:</box>|$)", re.DOTALL)
_FLORENCE_TOKEN_RE = re.compile(r"<loc_(\d+)>")
_FLORENCE_RUN_RE = re.compile(r"(?:<loc_\d+>)+")
_PALIGEMMA_TOKEN_RE = re.compile(r"<loc(\d+)>")
_PALIGEMMA_RUN_RE = re.compile(r"(?:<loc\d+>)+")
_TAG_RE = re.compile(r"<[^<>\s]*>")
_FENCE_RE = re.compile(r"```(?:json)?", re.IGNORECASE)
_ANSWER_PREFIX_RE = re.compile(r"^\s*(?:\*\*)?answer(?:\*\*)?\s*[:\-]\s*", re.IGNORECASE)
_LABEL_SPLIT_RE = re.compile(r"[,;\n&]|\band\b", re.IGNORECASE)
_TOKEN_STRIP = " \t\r\"'`*-•,!.;:"
_YESNO_RE = re.compile(r"^[\s\"'`*]*(yes|no)\b", re.IGNORECASE)
_NEGATIVE_RES = (
    re.compile(r"\b(?:does|do|did)\s*(?:not|nt)\s+(?:contain|show|have|include)\b"),
    re.compile(r"\bthere\s+(?:are|is)\s+no\b"),
    re.compile(r"\bno\s+(?:\w+\s+){0,3}(?:sources?|galaxies|galaxy|artefacts?|artifacts?|objects?)\b"),
)


@dataclass(frozen=True)
class PictureBox:
    """A box in normalised picture coordinates: edges, 0..1, y from the picture's top."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str | None = None
    score: float | None = None
    raw: str = ""
    convention: str = "yolo"
    problem: str | None = None  # e.g. "out of range", "NaN", "zero size"; None when valid
    values: tuple[float, ...] = ()  # the numbers as the answer wrote them, in ``convention``

    @property
    def valid(self) -> bool:
        """True when the box has no problem."""
        return self.problem is None

    def to_yolo(self) -> list[float]:
        """Return ``[x_center, y_center, width, height]``."""
        return [
            (self.x0 + self.x1) / 2,
            (self.y0 + self.y1) / 2,
            self.x1 - self.x0,
            self.y1 - self.y0,
        ]

    @classmethod
    def from_yolo(cls, xc: float, yc: float, w: float, h: float, **kw: object) -> PictureBox:
        """Build a box from YOLO centre/size values; ``problem`` is checked unless given."""
        return _checked_box(xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2, **kw)


@dataclass(frozen=True)
class ParsedAnswer:
    """What was read from one model answer."""

    kind: str  # text | single | multi | yesno | boxes
    text: str  # the raw answer
    labels: tuple[str, ...] = ()
    boxes: tuple[PictureBox, ...] = ()
    parsed: bool = True  # False when the answer could NOT be parsed
    problem: str | None = None  # why, in one line
    convention: str | None = None  # box convention used

    @property
    def unparsed(self) -> bool:
        """True when the answer could not be parsed."""
        return not self.parsed


# ---------------------------------------------------------------- labels


def _label_key(text: str) -> str:
    """Loose spelling key: letters and digits only, lone digits 1-3 as Roman numerals."""
    key = re.sub(r"[^A-Z0-9]", "", text.upper())
    return re.sub(r"(?<!\d)[123](?!\d)", lambda m: "I" * int(m.group()), key)


def _clean_answer(text: str) -> str:
    """Strip whitespace and a leading "Answer:"."""
    return _ANSWER_PREFIX_RE.sub("", text.strip(), count=1).strip()


def parse_labels(
    text: str,
    allowed: Sequence[str],
    multi: bool = False,
    none_label: str | None = None,
) -> ParsedAnswer:
    """Match an answer against ``allowed`` labels (case- and punctuation-insensitive).

    Items are separated by commas, semicolons, newlines or "and". Spelling variants
    such as ``FR I``, ``FRI`` or ``FR1`` are accepted when they match one label only.
    Labels come back in ``allowed`` order and spelling. Multi: ``none_label`` alone
    gives no labels; mixed with labels it is an error.
    """
    kind = "multi" if multi else "single"
    exact = {label.upper(): label for label in allowed}
    loose: dict[str, set[str]] = {}
    for label in allowed:
        loose.setdefault(_label_key(label), set()).add(label)

    tokens = [t.strip(_TOKEN_STRIP) for t in _LABEL_SPLIT_RE.split(_clean_answer(text))]
    tokens = [t for t in tokens if t]
    if not tokens:
        return ParsedAnswer(kind, text, parsed=False, problem="empty answer")

    found: set[str] = set()
    unknown: list[str] = []
    saw_none = False
    for token in tokens:
        upper = token.upper()
        candidates = loose.get(_label_key(token), set())
        if multi and none_label and upper == none_label.upper():
            saw_none = True
        elif upper in exact:
            found.add(exact[upper])
        elif len(candidates) == 1:
            found.update(candidates)
        else:
            unknown.append(token)

    allowed_text = ", ".join(allowed)
    if unknown:
        words = ", ".join(repr(t) for t in unknown)
        problem = f"not a known label: {words} (allowed: {allowed_text})"
        return ParsedAnswer(kind, text, parsed=False, problem=problem)
    if saw_none and found:
        problem = f"{none_label} mixed with labels {', '.join(sorted(found))}"
        return ParsedAnswer(kind, text, parsed=False, problem=problem)
    labels = tuple(label for label in allowed if label in found)
    if not multi and len(labels) != 1:
        problem = f"expected one label, got {len(labels)}: {', '.join(labels)}"
        return ParsedAnswer(kind, text, parsed=False, problem=problem)
    return ParsedAnswer(kind, text, labels=labels)


def parse_yesno(text: str) -> ParsedAnswer:
    """Read a leading Yes or No ("Yes.", "no, there is none"); labels ("Yes",) or ("No",)."""
    match = _YESNO_RE.match(_clean_answer(text))
    if match is None:
        return ParsedAnswer("yesno", text, parsed=False, problem="answer does not start with Yes or No")
    return ParsedAnswer("yesno", text, labels=(match.group(1).capitalize(),))


# ---------------------------------------------------------------- boxes


def _checked_box(x0: float, y0: float, x1: float, y1: float, **kw: object) -> PictureBox:
    """Build a box, setting ``problem`` from its edges unless ``problem`` is given."""
    if "problem" not in kw:
        kw["problem"] = _box_problem(x0, y0, x1, y1)
    return PictureBox(x0, y0, x1, y1, **kw)  # type: ignore[arg-type]


def _box_problem(x0: float, y0: float, x1: float, y1: float) -> str | None:
    """Say what is wrong with normalised edges, or None when they are fine."""
    values = (x0, y0, x1, y1)
    if any(math.isnan(v) for v in values):
        return "NaN"
    if any(math.isinf(v) for v in values):
        return "infinite"
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return "zero size" if x1 == x0 or y1 == y0 else "negative size"
    if any(v < -TOLERANCE or v > 1 + TOLERANCE for v in values):
        return "out of range"
    return None


def _edges(
    convention: str,
    numbers: Sequence[float],
    picture_size: tuple[float, float] | None,
    transform: "Transform | None",
) -> tuple[float, float, float, float]:
    """Four numbers as the convention writes them → normalised edges ``x0, y0, x1, y1``."""
    a, b, c, d = numbers
    if convention == "yolo":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if convention in ("qwen", "xyxy-1000"):
        return a / QWEN_GRID, b / QWEN_GRID, c / QWEN_GRID, d / QWEN_GRID
    if convention == "resized-pixels":
        assert transform is not None
        return transform.input_box_to_normalised(a, b, c, d)
    if convention == "florence-loc":      # a bin is its centre (Florence2PostProcessor.dequantize)
        return tuple((v + 0.5) / FLORENCE_BINS for v in (a, b, c, d))  # type: ignore[return-value]
    if convention == "paligemma-loc":     # y first
        return b / PALIGEMMA_BINS, a / PALIGEMMA_BINS, d / PALIGEMMA_BINS, c / PALIGEMMA_BINS
    assert picture_size is not None       # pixels
    width, height = picture_size
    return a / width, b / height, c / width, d / height


def _box(numbers, convention, picture_size, transform, **kw) -> PictureBox:
    """One box from the numbers an answer wrote; the wrong count or bad bins are flagged."""
    values = tuple(float(v) for v in numbers)
    if len(values) != 4:
        nan = math.nan
        return PictureBox(nan, nan, nan, nan, convention=convention, values=values,
                          problem=f"expected 4 numbers, got {len(values)}", **kw)
    problem = kw.pop("problem", None)
    bins = BOX_CONVENTIONS[convention].scale if BOX_CONVENTIONS[convention].units == "bins" else 0
    if bins and any(not (0 <= v < bins and v.is_integer()) for v in values):
        problem = problem or f"out of range (bins are 0..{int(bins) - 1})"
    x0, y0, x1, y1 = _edges(convention, values, picture_size, transform)
    if problem is not None:
        kw["problem"] = problem
    return _checked_box(x0, y0, x1, y1, convention=convention, values=values, **kw)


def _bracket_boxes(
    text: str,
    convention: str,
    label: str | None,
    picture_size: tuple[float, float] | None,
    transform: "Transform | None" = None,
) -> list[PictureBox]:
    """Boxes from ``[a, b, c, d]`` groups; groups without numbers are ignored."""
    boxes = []
    for match in _BRACKET_RE.finditer(text):
        numbers = [float(n) for n in _NUM_RE.findall(match.group(1))]
        if not numbers:
            continue
        boxes.append(_box(numbers, convention, picture_size, transform, label=label, raw=match.group(0)))
    return boxes


def _qwen_boxes(text: str, label: str | None, convention: str = "qwen",
                transform: "Transform | None" = None) -> list[PictureBox]:
    """Boxes from Qwen2-VL corner pairs ``(x1,y1),(x2,y2)`` (on the convention's own scale)."""
    boxes = []
    for match in _QWEN_RE.finditer(text):
        numbers = [float(match.group(k)) for k in ("x1", "y1", "x2", "y2")]
        ref = (match.group("label") or "").strip()
        boxes.append(_box(numbers, convention, None, transform, label=ref or label, raw=match.group(0)))
    return boxes


def _json_boxes(text: str, convention: str, label: str | None,
                transform: "Transform | None") -> list[PictureBox]:
    """Boxes from JSON ``{"bbox_2d": [x1, y1, x2, y2], "label": "..."}`` objects (Qwen2.5-VL, Qwen3-VL).

    Read key by key, not with ``json.loads`` of the whole answer, so a truncated or slightly
    malformed list still gives its complete boxes; a ``bbox_2d`` without a closed ``[...]`` is
    kept and flagged."""
    boxes = []
    keys = list(_BBOX_KEY_RE.finditer(text))
    for i, key in enumerate(keys):
        limit = keys[i + 1].start() if i + 1 < len(keys) else len(text)
        start = text.rfind("{", keys[i - 1].end() if i else 0, key.start())
        close = text.find("}", key.end(), limit)
        obj = text[start if start >= 0 else key.start():close + 1 if close >= 0 else limit]
        found = _JSON_LABEL_RE.search(obj)
        name = _json_string(found.group(1)) if found else label
        group = _BRACKET_RE.match(text, key.end())
        if group is None:
            nan = math.nan
            boxes.append(PictureBox(nan, nan, nan, nan, label=name, raw=obj.strip(), convention=convention,
                                    problem="bbox_2d without a closed [x1, y1, x2, y2]"))
            continue
        numbers = [float(n) for n in _NUM_RE.findall(group.group(1))]
        boxes.append(_box(numbers, convention, None, transform, label=name or label, raw=obj.strip()))
    return boxes


def _json_string(body: str) -> str:
    try:
        return json.loads(f'"{body}"')
    except ValueError:
        return body


def _internvl_boxes(text: str, label: str | None) -> list[PictureBox]:
    """Boxes from ``<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>`` on the 0..1000 grid."""
    boxes = []
    for match in _INTERNVL_RE.finditer(text):
        name = (match.group("label") or "").strip() or label
        inner = match.group("boxes")
        found = _bracket_boxes(inner, "xyxy-1000", name, None)
        if not found:
            nan = math.nan
            found = [PictureBox(nan, nan, nan, nan, label=name, raw=match.group(0), convention="xyxy-1000",
                                problem="<box> without [x1, y1, x2, y2]")]
        boxes.extend(found)
    return boxes


def _loc_boxes(text: str, convention: str, label: str | None) -> list[PictureBox]:
    """Boxes from runs of location tokens: Florence-2 (label first) or PaliGemma (label after)."""
    florence = convention == "florence-loc"
    run_re = _FLORENCE_RUN_RE if florence else _PALIGEMMA_RUN_RE
    token_re = _FLORENCE_TOKEN_RE if florence else _PALIGEMMA_TOKEN_RE
    runs = list(run_re.finditer(text))
    boxes = []
    for i, run in enumerate(runs):
        if florence:     # the label is the text since the previous run
            name = text[runs[i - 1].end() if i else 0:run.start()]
        else:            # the label is the text up to " ; " or the next run
            end = runs[i + 1].start() if i + 1 < len(runs) else len(text)
            name = text[run.end():end].split(";")[0]
        name = _TAG_RE.sub("", name).strip(" \t\r\n;,.") or label
        bins = [float(b) for b in token_re.findall(run.group(0))]
        for k in range(0, len(bins), 4):
            boxes.append(_box(bins[k:k + 4], convention, None, None, label=name, raw=run.group(0)))
    return boxes


def _normalise_sentence(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def _is_negative(text: str, negative_answer: str | None, convention: str = "yolo") -> bool:
    """True when the answer says there is nothing to box."""
    if convention in ("resized-pixels", "xyxy-1000") and _FENCE_RE.sub("", text).strip() in ("[]", "{}"):
        return True   # an empty JSON list
    if convention in ("florence-loc", "paligemma-loc") and not _TAG_RE.sub("", text).strip(" \t\r\n;"):
        return True   # nothing but control tokens: no detection
    sentence = _normalise_sentence(text)
    if sentence in ("no", "none", "nothing") or (
        negative_answer and sentence == _normalise_sentence(negative_answer)
    ):
        return True
    return any(pattern.search(sentence) for pattern in _NEGATIVE_RES)


def parse_boxes(
    text: str,
    convention: str = "yolo",
    picture_size: tuple[float, float] | None = None,
    label: str | None = None,
    negative_answer: str | None = None,
    transform: "Transform | None" = None,
    other_negatives: Sequence[str] = (),
) -> ParsedAnswer:
    """Read every box in ``text`` as normalised picture edges (see the module docstring).

    ``other_negatives``: the negative answers of the OTHER box tasks; an answer that is one of
    them ("… does not contain spurious radio sources" to the compact-sources question) speaks of
    another class, and is flagged as not parsed rather than read as "none here".

    An answer with no box that says there is none gives zero boxes, parsed. Boxes that
    are NaN, out of range or of zero size are kept and flagged; ``problem`` counts them.
    ``resized-pixels`` boxes go back through ``transform`` (it must know the processor's
    resized picture size); ``pixels`` needs ``picture_size`` (or a ``transform``).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r} (known: {', '.join(CONVENTIONS)})")
    if convention == "pixels" and picture_size is None and transform is not None:
        picture_size = (transform.picture_width, transform.picture_height)
    if convention == "pixels" and (picture_size is None or min(picture_size) <= 0):
        raise ValueError("the 'pixels' box convention needs picture_size=(width, height)")
    if convention == "resized-pixels" and (transform is None or transform.input_size is None):
        raise ValueError("the 'resized-pixels' box convention needs a transform that knows the size the "
                         "processor resized the picture to (Transform.with_input_size)")
    if convention == "none":
        problem = "this model family does not return boxes (no grounding): ask a question or score labels"
        return ParsedAnswer("boxes", text, parsed=False, problem=problem, convention=convention)

    if convention in ("florence-loc", "paligemma-loc"):
        boxes = _loc_boxes(text, convention, label)
    elif convention in ("resized-pixels", "xyxy-1000"):
        boxes = _json_boxes(text, convention, label, transform)
        if not boxes and convention == "xyxy-1000":
            boxes = _internvl_boxes(text, label)
        if not boxes:
            boxes = _qwen_boxes(text, label, convention, transform)
        if not boxes:
            boxes = _bracket_boxes(text, convention, label, None, transform)
    else:
        boxes = _qwen_boxes(text, label) if convention == "qwen" else []
        if not boxes:
            boxes = _bracket_boxes(text, convention, label, picture_size)

    if not boxes:
        sentence = _normalise_sentence(text)
        own = _normalise_sentence(negative_answer) if negative_answer else None
        for other in other_negatives:
            if sentence == _normalise_sentence(other) and sentence != own:
                problem = (f"the answer is about another class ({text.strip()!r}); "
                           f"this question expects boxes or {negative_answer!r}")
                return ParsedAnswer("boxes", text, parsed=False, problem=problem, convention=convention)
        if _is_negative(text, negative_answer, convention):
            return ParsedAnswer("boxes", text, convention=convention)
        problem = "no boxes found and no negative answer"
        return ParsedAnswer("boxes", text, parsed=False, problem=problem, convention=convention)

    flagged = [box.problem for box in boxes if box.problem]
    problem = None
    if flagged:
        reasons = "; ".join(dict.fromkeys(flagged))
        problem = f"{len(flagged)} of {len(boxes)} boxes flagged: {reasons}"
    return ParsedAnswer("boxes", text, boxes=tuple(boxes), problem=problem, convention=convention)


def format_boxes(
    boxes: Iterable[PictureBox | Sequence[float]],
    convention: str = "yolo",
    labels: Sequence[str | None] | None = None,
    transform: "Transform | None" = None,
) -> str:
    """Write boxes (PictureBoxes, or normalised edges ``[x0, y0, x1, y1]``) as ``convention`` writes them.

    The inverse of ``parse_boxes``: what training data and tests put in the model's mouth. Labels
    default to each PictureBox's own; ``resized-pixels`` needs the ``transform`` the parser uses.
    """
    boxes = list(boxes)
    edges = [(b.x0, b.y0, b.x1, b.y1) if isinstance(b, PictureBox) else tuple(map(float, b)) for b in boxes]
    if labels is None:
        labels = [getattr(b, "label", None) for b in boxes]
    labels = list(labels) + [None] * (len(edges) - len(labels))
    if convention == "yolo":
        return format_yolo_boxes([[(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0] for x0, y0, x1, y1 in edges])
    if convention == "pixels":
        raise ValueError("format_boxes: write 'pixels' boxes yourself (they need the picture size)")
    if convention == "none":
        raise ValueError("format_boxes: the 'none' convention has no boxes")
    parts = []
    for (x0, y0, x1, y1), name in zip(edges, labels):
        name = name or "box"
        if convention == "qwen":
            a, b, c, d = (round(v * QWEN_GRID) for v in (x0, y0, x1, y1))
            parts.append(f"<|object_ref_start|>{name}<|object_ref_end|><|box_start|>({a},{b}),({c},{d})<|box_end|>")
        elif convention == "xyxy-1000":
            a, b, c, d = (round(v * QWEN_GRID) for v in (x0, y0, x1, y1))
            parts.append(f"<ref>{name}</ref><box>[[{a}, {b}, {c}, {d}]]</box>")
        elif convention == "resized-pixels":
            if transform is None or transform.input_size is None:
                raise ValueError("format_boxes: 'resized-pixels' needs a transform with the input size")
            a, b, c, d = (round(float(v)) for v in transform.normalised_box_to_input(x0, y0, x1, y1))
            parts.append(json.dumps({"bbox_2d": [a, b, c, d], "label": name}))
        elif convention == "florence-loc":
            bins = (min(FLORENCE_BINS - 1, max(0, math.floor(v * FLORENCE_BINS))) for v in (x0, y0, x1, y1))
            parts.append(name + "".join(f"<loc_{int(k)}>" for k in bins))
        elif convention == "paligemma-loc":
            bins = (min(PALIGEMMA_BINS - 1, max(0, round(v * PALIGEMMA_BINS))) for v in (y0, x0, y1, x1))
            parts.append("".join(f"<loc{int(k):04d}>" for k in bins) + f" {name}")
        else:
            raise ValueError(f"unknown box convention {convention!r} (known: {', '.join(CONVENTIONS)})")
    if convention == "resized-pixels":
        return "```json\n[\n  " + ",\n  ".join(parts) + "\n]\n```"
    return (" ; " if convention == "paligemma-loc" else "").join(parts)


# Every value format_yolo_boxes writes for a box inside the picture ("0.0", "0.01", …, "0.1", …, "1.0").
# A tokenizer may hold each as one token (nano does): a coordinate is then one choice among 101.
COORDINATE_STRINGS = tuple(repr(round(k / 100, 2) + 0.0) for k in range(101))


def format_yolo_boxes(boxes: Iterable[PictureBox | Sequence[float]]) -> str:
    """Write boxes as radio-llava training text: ``[0.45, 0.32, 0.05, 0.04], [...]``."""
    groups = []
    for box in boxes:
        values = box.to_yolo() if isinstance(box, PictureBox) else list(box)
        rounded = (round(float(v), 2) + 0.0 for v in values)  # + 0.0 turns -0.0 into 0.0
        groups.append("[" + ", ".join(repr(v) for v in rounded) + "]")
    return ", ".join(groups)


# ---------------------------------------------------------------- dispatch


def parse_answer(
    text: str,
    task: Task | None,
    convention: str = "yolo",
    picture_size: tuple[float, float] | None = None,
    transform: "Transform | None" = None,
) -> ParsedAnswer:
    """Parse ``text`` as the answer to ``task`` (no task: plain text); ``transform`` for
    conventions that need it (``resized-pixels``)."""
    if task is None or task.kind == "text":
        return ParsedAnswer("text", text)
    if task.kind == "single":
        return parse_labels(text, task.labels)
    if task.kind == "multi":
        return parse_labels(text, task.labels, multi=True, none_label=task.none_label)
    if task.kind == "yesno":
        return parse_yesno(text)
    if task.kind == "boxes":
        return parse_boxes(
            text,
            convention=convention,
            picture_size=picture_size,
            label=task.box_class,
            negative_answer=task.negative_answer,
            transform=transform,
            other_negatives=_other_negatives(task),
        )
    raise ValueError(f"task {task.name!r} has unknown kind {task.kind!r}")


def _other_negatives(task: Task) -> tuple[str, ...]:
    """The negative answers of the catalogue's other box tasks (what an answer about another class says)."""
    from .tasks import TaskError, load_tasks

    try:
        tasks = load_tasks().values()
    except TaskError:          # a broken catalogue is reported where it is loaded, not here
        return ()
    return tuple(t.negative_answer for t in tasks
                 if t.kind == "boxes" and t.negative_answer and t.negative_answer != task.negative_answer)
