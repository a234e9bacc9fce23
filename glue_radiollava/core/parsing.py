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
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .tasks import Task

CONVENTIONS = ("yolo", "qwen", "pixels")
# How far outside 0..1 a normalised edge may lie and still be valid: radio-llava rounds every
# value to 2 decimals, so a box touching the picture edge can overhang by up to ~0.0075.
TOLERANCE = 0.01
QWEN_GRID = 1000.0

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


def _bracket_boxes(
    text: str,
    convention: str,
    label: str | None,
    picture_size: tuple[float, float] | None,
) -> list[PictureBox]:
    """Boxes from ``[a, b, c, d]`` groups; groups without numbers are ignored."""
    boxes = []
    for match in _BRACKET_RE.finditer(text):
        numbers = [float(n) for n in _NUM_RE.findall(match.group(1))]
        raw = match.group(0)
        kw = {"label": label, "raw": raw, "convention": convention}
        if not numbers:
            continue
        if len(numbers) != 4:
            nan = math.nan
            problem = f"expected 4 numbers, got {len(numbers)}"
            boxes.append(PictureBox(nan, nan, nan, nan, problem=problem, **kw))  # type: ignore[arg-type]
            continue
        a, b, c, d = numbers
        if convention == "yolo":
            boxes.append(PictureBox.from_yolo(a, b, c, d, **kw))
        elif convention == "qwen":
            boxes.append(_checked_box(a / QWEN_GRID, b / QWEN_GRID, c / QWEN_GRID, d / QWEN_GRID, **kw))
        else:
            assert picture_size is not None
            width, height = picture_size
            boxes.append(_checked_box(a / width, b / height, c / width, d / height, **kw))
    return boxes


def _qwen_boxes(text: str, label: str | None) -> list[PictureBox]:
    """Boxes from Qwen2-VL corner pairs ``(x1,y1),(x2,y2)`` on the 0..1000 grid."""
    boxes = []
    for match in _QWEN_RE.finditer(text):
        x1, y1, x2, y2 = (float(match.group(k)) / QWEN_GRID for k in ("x1", "y1", "x2", "y2"))
        ref = (match.group("label") or "").strip()
        boxes.append(
            _checked_box(x1, y1, x2, y2, label=ref or label, raw=match.group(0), convention="qwen")
        )
    return boxes


def _normalise_sentence(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def _is_negative(text: str, negative_answer: str | None) -> bool:
    """True when the answer says there is nothing to box."""
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
) -> ParsedAnswer:
    """Read every box in ``text`` as normalised picture edges (see the module docstring).

    An answer with no box that says there is none gives zero boxes, parsed. Boxes that
    are NaN, out of range or of zero size are kept and flagged; ``problem`` counts them.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r} (known: {', '.join(CONVENTIONS)})")
    if convention == "pixels" and (picture_size is None or min(picture_size) <= 0):
        raise ValueError("the 'pixels' box convention needs picture_size=(width, height)")

    boxes = _qwen_boxes(text, label) if convention == "qwen" else []
    if not boxes:
        boxes = _bracket_boxes(text, convention, label, picture_size)

    if not boxes:
        if _is_negative(text, negative_answer):
            return ParsedAnswer("boxes", text, convention=convention)
        problem = "no boxes found and no negative answer"
        return ParsedAnswer("boxes", text, parsed=False, problem=problem, convention=convention)

    flagged = [box.problem for box in boxes if box.problem]
    problem = None
    if flagged:
        reasons = "; ".join(dict.fromkeys(flagged))
        problem = f"{len(flagged)} of {len(boxes)} boxes flagged: {reasons}"
    return ParsedAnswer("boxes", text, boxes=tuple(boxes), problem=problem, convention=convention)


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
) -> ParsedAnswer:
    """Parse ``text`` as the answer to ``task`` (no task: plain text)."""
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
        )
    raise ValueError(f"task {task.name!r} has unknown kind {task.kind!r}")
