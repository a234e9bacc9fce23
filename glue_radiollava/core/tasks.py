"""The task catalogue: questions to ask the model, read from ``resources/tasks/*.yaml``.

Each YAML file holds a list of task mappings (or a single mapping). Files are read in
name order and tasks in file order, which is the order of :func:`load_tasks`.

A model family is asked the way it was trained to answer (``Family.phrasing``): a file whose
mapping has the single key ``phrasings`` holds, per phrasing and task kind, a template
(``{phrase}``: the task's ``phrase``, e.g. "compact radio source"; ``{prompt}``: its own prompt),
e.g. ``qwen2.5-vl: {boxes: "Outline the position of each {phrase} and output all the coordinates
in JSON format."}``. A task's own ``phrasings`` mapping (phrasing → prompt) wins over the
templates; :meth:`Task.prompt_for` gives the prompt for a phrasing (its ``prompt`` by default).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import RadioLlavaError

KINDS = ("text", "single", "multi", "yesno", "boxes")
YESNO_LABELS = ("Yes", "No")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class TaskError(RadioLlavaError, ValueError):
    """A task file is invalid, or a task name is unknown (a one-line message)."""


@dataclass(frozen=True)
class Task:
    """One question for the model and how its answer should be read."""

    name: str
    title: str
    kind: str
    prompt: str
    labels: tuple[str, ...] = ()
    none_label: str | None = None
    box_class: str | None = None
    benchmark: str | None = None
    negative_answer: str | None = None
    phrase: str | None = None        # what a box task looks for, in words ("compact radio source")
    phrasings: tuple[tuple[str, str], ...] = ()   # (phrasing, prompt): how other families are asked
    max_new_tokens: int | None = None             # the answer's token budget (None: the caller's default)
    truth_from: str | None = None    # a yes/no benchmark's truth from a label list: "Yes" when it holds this
    paraphrases: tuple[str, ...] = ()             # other wordings of the prompt (training data)

    def prompt_for(self, phrasing: str | None = None) -> str:
        """The prompt for a family's ``phrasing`` (``Family.phrasing``); ``prompt`` when there is none."""
        return dict(self.phrasings).get(phrasing or "", self.prompt)


_KEYS = tuple(f.name for f in fields(Task))
_OPTIONAL_STR_KEYS = ("none_label", "box_class", "benchmark", "negative_answer", "phrase", "truth_from")
PHRASINGS_KEY = "phrasings"


def default_task_folder() -> Path:
    """Return the folder of the installed catalogue (or the source tree's one)."""
    try:
        from importlib.resources import files

        folder = Path(str(files("glue_radiollava.resources") / "tasks"))
        if folder.is_dir():
            return folder
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / "resources" / "tasks"


def load_tasks(folder: Path | None = None) -> dict[str, Task]:
    """Load and validate every task in ``folder`` (default: the catalogue), keyed by name.

    The default catalogue is read once and cached. Raises :class:`TaskError` with a
    one-line message naming the file and the key at fault.
    """
    if folder is None:
        return dict(_default_tasks())
    return _load_folder(Path(folder))


def get_task(name: str) -> Task:
    """Return the catalogue task called ``name``, or the one a benchmark code names ("B3", "b6":
    the task whose ``benchmark`` it is, as `radiollava bench run --task` reads them)."""
    tasks = load_tasks()
    code = str(name).strip().upper()
    if re.fullmatch(r"B\d+", code):
        found = [t for t in tasks.values() if (t.benchmark or "").upper() == code]
        if len(found) == 1:
            return found[0]
        if found:
            raise TaskError(f"benchmark {code} is not one question ({code} asks: {', '.join(t.name for t in found)}); "
                            f"give one of those, or use `radiollava bench run --task {code}`")
    try:
        return tasks[name]
    except KeyError:
        known = ", ".join(tasks)
        raise TaskError(
            f"unknown task {name!r}; run `radiollava tasks` to list them (known: {known})"
        ) from None


@functools.lru_cache(maxsize=1)
def _default_tasks() -> tuple[tuple[str, Task], ...]:
    """The default catalogue, cached as an immutable tuple of (name, task)."""
    return tuple(_load_folder(default_task_folder()).items())


def _load_folder(folder: Path) -> dict[str, Task]:
    """Read all ``*.yaml``/``*.yml`` files of ``folder`` in name order."""
    if not folder.is_dir():
        raise TaskError(f"{folder}: task folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    if not paths:
        raise TaskError(f"{folder}: no task files (*.yaml)")
    tasks: dict[str, Task] = {}
    origin: dict[str, Path] = {}
    templates: dict[str, dict[str, str]] = {}
    for path in paths:
        entries = _load_file(path, templates)
        for task in entries:
            if task.name in tasks:
                raise TaskError(
                    f"{path}: key 'name': duplicate task name {task.name!r}"
                    f" (first defined in {origin[task.name]})"
                )
            tasks[task.name] = task
            origin[task.name] = path
    return {name: _with_templates(task, templates, origin[name]) for name, task in tasks.items()}


def _with_templates(task: Task, templates: dict[str, dict[str, str]], path: Path) -> Task:
    """The task with a prompt for every phrasing that has a template for its kind."""
    from dataclasses import replace

    own = dict(task.phrasings)
    for phrasing, by_kind in templates.items():
        template = by_kind.get(task.kind)
        if phrasing in own or template is None:
            continue
        if "{phrase}" in template and not task.phrase:
            raise TaskError(f"{path}: task {task.name!r}, key 'phrase': needed by the {phrasing!r} "
                            f"phrasing of {task.kind!r} tasks (e.g. phrase: compact radio source)")
        own[phrasing] = template.replace("{phrase}", task.phrase or "").replace("{prompt}", task.prompt)
    return replace(task, phrasings=tuple(own.items()))


def _load_phrasings(path: Path, data: dict, templates: dict[str, dict[str, str]]) -> None:
    """A ``phrasings:`` file: phrasing → task kind → template."""
    table = data[PHRASINGS_KEY]
    if not isinstance(table, dict):
        raise TaskError(f"{path}: key 'phrasings': expected a mapping of phrasing → kind → template")
    for phrasing, by_kind in table.items():
        if not isinstance(by_kind, dict):
            raise TaskError(f"{path}: phrasing {phrasing!r}: expected a mapping of task kind → template")
        for kind, template in by_kind.items():
            if kind not in KINDS:
                raise TaskError(f"{path}: phrasing {phrasing!r}, key {kind!r}: unknown kind "
                                f"(expected one of {', '.join(KINDS)})")
            if not isinstance(template, str) or not template.strip():
                raise TaskError(f"{path}: phrasing {phrasing!r}, key {kind!r}: not a non-empty string")
            if phrasing in templates and kind in templates[phrasing]:
                raise TaskError(f"{path}: phrasing {phrasing!r}, key {kind!r}: defined twice")
            templates.setdefault(str(phrasing), {})[kind] = template.strip()


def _load_file(path: Path, templates: dict[str, dict[str, str]] | None = None) -> list[Task]:
    """Parse one YAML file into validated tasks (a ``phrasings:`` file fills ``templates``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())
        raise TaskError(f"{path}: cannot read YAML: {detail}") from None
    if data is None:
        return []
    if isinstance(data, dict) and set(data) == {PHRASINGS_KEY}:
        _load_phrasings(path, data, templates if templates is not None else {})
        return []
    entries = [data] if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise TaskError(f"{path}: expected a list of tasks, got {type(data).__name__}")
    return [_make_task(path, i, entry) for i, entry in enumerate(entries, start=1)]


def _make_task(path: Path, index: int, entry: Any) -> Task:
    """Validate one mapping and build its :class:`Task`."""
    where = f"{path}: task #{index}"
    if not isinstance(entry, dict):
        raise TaskError(f"{where}: expected a mapping, got {type(entry).__name__}")
    if isinstance(entry.get("name"), str):
        where = f"{path}: task {entry['name']!r}"

    def fail(key: str, message: str) -> TaskError:
        return TaskError(f"{where}, key {key!r}: {message}")

    for key in entry:
        if key not in _KEYS:
            raise fail(str(key), f"unknown key (allowed: {', '.join(_KEYS)})")
    for key in ("name", "kind", "prompt"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise fail(key, "missing or not a non-empty string")
    name, kind = entry["name"], entry["kind"]
    if not _NAME_RE.match(name):
        raise fail("name", "use lower-case letters, digits, '-' or '_'")
    if kind not in KINDS:
        raise fail("kind", f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    title = entry.get("title", name)
    if not isinstance(title, str) or not title.strip():
        raise fail("title", "not a non-empty string")
    for key in _OPTIONAL_STR_KEYS:
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise fail(key, "not a string")

    labels = entry.get("labels") or []
    if not isinstance(labels, list) or not all(
        isinstance(label, str) and label.strip() for label in labels
    ):
        raise fail("labels", 'expected a list of strings (quote "Yes"/"No" in YAML)')
    if kind in ("single", "multi") and not labels:
        raise fail("labels", f"a {kind!r} task needs labels")
    if len(set(labels)) != len(labels):
        raise fail("labels", "duplicate labels")
    phrasings = entry.get("phrasings") or {}
    if not isinstance(phrasings, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in phrasings.items()
    ):
        raise fail("phrasings", "expected a mapping of phrasing → prompt (strings)")
    budget = entry.get("max_new_tokens")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise fail("max_new_tokens", "expected a whole number of at least 1")
    paraphrases = entry.get("paraphrases") or []
    if not isinstance(paraphrases, list) or not all(isinstance(q, str) and q.strip() for q in paraphrases):
        raise fail("paraphrases", "expected a list of question texts")
    if kind == "yesno":
        if labels and tuple(labels) != YESNO_LABELS:
            raise fail("labels", 'a yesno task has labels ["Yes", "No"]')
        labels = list(YESNO_LABELS)

    return Task(
        name=name,
        title=title.strip(),
        kind=kind,
        prompt=entry["prompt"],
        labels=tuple(labels),
        none_label=entry.get("none_label"),
        box_class=entry.get("box_class"),
        benchmark=entry.get("benchmark"),
        negative_answer=entry.get("negative_answer"),
        phrase=entry.get("phrase"),
        phrasings=tuple((k, v.strip()) for k, v in phrasings.items()),
        max_new_tokens=budget,
        truth_from=entry.get("truth_from"),
        paraphrases=tuple(q.strip("\n") for q in paraphrases),
    )
