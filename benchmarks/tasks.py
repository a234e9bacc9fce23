"""The benchmark tasks B1–B7 on top of the core's task catalogue.

B1–B6 are the catalogue tasks whose ``benchmark`` key names them (the paper's exact prompts and
label sets); B7 is source detection: one catalogue box task per class (``boxes-compact`` …), the
boxes matched to the truth by IoU. Nothing here knows a prompt by heart: prompts and labels are
read from ``resources/tasks/*.yaml`` through ``glue_radiollava.core.tasks``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.tasks import Task, load_tasks

CODES = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
DETECTION = "B7"
DEFAULT_MAX_NEW_TOKENS = 32      # a task file that names no max_new_tokens: a closed-set answer
UNPARSED = "UNPARSED"   # the prediction recorded for an answer that could not be read


@dataclass(frozen=True)
class BenchTask:
    """One benchmark: its code, kind, label set and the catalogue task(s) that ask it."""

    code: str
    kind: str                      # single | multi | yesno | boxes
    labels: tuple[str, ...]        # classes (B7: box classes with a catalogue task)
    title: str
    task: Task | None = None       # the catalogue task (B1–B6)

    @property
    def none_label(self) -> str | None:
        return self.task.none_label if self.task is not None else None

    @property
    def prompt(self) -> str | None:
        return self.task.prompt if self.task is not None else None

    @property
    def max_new_tokens(self) -> int:
        """The answer's token budget, from the task file (B7: the largest of its box tasks')."""
        if self.task is not None:
            return self.task.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        return max((t.max_new_tokens or DEFAULT_MAX_NEW_TOKENS for t in box_tasks().values()),
                   default=DEFAULT_MAX_NEW_TOKENS)


def box_tasks() -> dict[str, Task]:
    """Box class → the catalogue task that asks for that class's boxes: the box tasks the catalogue
    puts in B7 (``benchmark: B7``)."""
    return {t.box_class: t for t in load_tasks().values()
            if t.kind == "boxes" and t.box_class and (t.benchmark or "").upper() == DETECTION}


def get_bench(code: str) -> BenchTask:
    """The benchmark ``code`` (B1…B7, any case, or the catalogue name such as ``b6-fr-class``)."""
    code = normalise_code(code)
    if code == DETECTION:
        classes = tuple(box_tasks())
        return BenchTask(DETECTION, "boxes", classes, "B7: source detection (boxes matched by IoU)")
    found = [t for t in load_tasks().values() if (t.benchmark or "").upper() == code]
    if not found:
        raise RadioLlavaError(f"the task catalogue has no task for benchmark {code}; "
                              "check resources/tasks/10-benchmarks.yaml")
    task = found[0]
    return BenchTask(code, task.kind, tuple(task.labels), task.title, task)


def normalise_code(text: str) -> str:
    """'b6', 'B6' or 'b6-fr-class' → 'B6'."""
    s = str(text).strip()
    if s.upper() in CODES:
        return s.upper()
    task = load_tasks().get(s)
    if task is not None and task.benchmark:
        return task.benchmark.upper()
    raise RadioLlavaError(f"unknown benchmark {text!r}; use B1 … B7, all, or a comma-separated list")


def parse_codes(text: str) -> list[str]:
    """'all' → every code; 'B1,B3' → ['B1', 'B3'] (order kept, duplicates dropped)."""
    if str(text).strip().lower() == "all":
        return list(CODES)
    codes = [normalise_code(part) for part in str(text).split(",") if part.strip()]
    if not codes:
        raise RadioLlavaError("--task is empty; use B1 … B7 or all")
    return list(dict.fromkeys(codes))


# ------------------------------------------------------------------ answers as text
def answer_text(bench: BenchTask, truth: tuple[str, ...]) -> str:
    """The answer a perfect model would give (few-shot examples): labels joined as the prompt asks."""
    if bench.kind == "multi":
        return ", ".join(truth) if truth else (bench.none_label or "NONE")
    if bench.kind in ("single", "yesno"):
        return truth[0]
    raise ValueError("box answers need the picture: use boxes_text")


def candidates(bench: BenchTask) -> list[tuple[str, tuple[str, ...]]]:
    """Score mode: every allowed answer text and the labels it names.

    Single-label and yes/no: one answer per label. Multi-label (B1): every subset of the labels,
    written as the prompt asks ("NONE", "EXTENDED", "EXTENDED, DIFFUSE", …), so the likelihood of
    each full answer is scored and each label gets its own decision from the subsets naming it.
    """
    if bench.kind == "multi":
        out = []
        for r in range(len(bench.labels) + 1):
            for subset in itertools.combinations(bench.labels, r):
                out.append((answer_text(bench, subset), subset))
        return out
    if bench.kind in ("single", "yesno"):
        return [(label, (label,)) for label in bench.labels]
    raise RadioLlavaError(f"{bench.code} has no closed answer set to score; it is always generated")


def decide(bench: BenchTask, probs: list[float]) -> tuple[tuple[str, ...], dict[str, float]]:
    """Score mode: the predicted labels and a probability per label from the candidates' probabilities.

    Single/yes-no: the most likely label. Multi-label: P(label) is the summed probability of the
    answers that name it, and the label is predicted when P > 0.5 (one decision per label).
    """
    cands = candidates(bench)
    if bench.kind == "multi":
        per_label = {lab: sum(p for (_, names), p in zip(cands, probs) if lab in names)
                     for lab in bench.labels}
        return tuple(lab for lab in bench.labels if per_label[lab] > 0.5), per_label
    per_label = {names[0]: p for (_, names), p in zip(cands, probs)}
    best = max(per_label, key=per_label.get)
    return (best,), per_label
