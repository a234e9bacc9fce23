"""Templated descriptions and the default question/answer turns of one image (paper 3.1.1).

Descriptions are static: two images with the same annotations get the same text. Questions come
from the task catalogue (``resources/tasks``): classification turns use the B1–B6 prompts and box
turns the box-task prompts and negative answers, so a model is trained on exactly what the
benchmarks and the assistant ask. ``phrasing="mixed"`` adds paraphrases (half of the time).
Box answers are written with the core's ``format_yolo_boxes`` in picture coordinates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from glue_radiollava.core.parsing import PictureBox, format_yolo_boxes
from glue_radiollava.core.labels import Truth, peculiarity_of
from glue_radiollava.core.tasks import Task, get_task, load_tasks

PHRASINGS = ("catalogue", "mixed")

DESCRIBE_QUESTIONS = (
    "Can you describe the image content?",
    "Provide a brief description of the given image.",
    "Describe the radio image.",
    "What do you see in this radio astronomical image?",
    "Can you provide a brief description of the image?",
    "Give a short description of the radio sources in this image.",
)
BORDER_TASK = "blank-border"   # a yes/no catalogue task of this name, when there is one, is asked instead
BORDER_QUESTIONS = (
    "Is there any blank pixel region at the edges of the image?\nAnswer concisely: Yes or No.",
    "Does the image contain blank (NaN) regions along its borders?\nAnswer concisely: Yes or No.",
)

INTRO = ("The image is a radio astronomical image cutout extracted from a larger radio-continuum "
         "Stokes-I map produced by an interferometer telescope.")
LABEL_SENTENCES = {
    "BACKGROUND": "It contains only sky background noise: no radio source is visible.",
    "COMPACT": "The image contains various point-like or compact radio sources superimposed over the "
               "sky background noise.",
    "EXTENDED": "It also contains one or more extended radio sources.",
    "RADIO-GALAXY": "Some of them are likely extended radio galaxies.",
    "DIFFUSE": "Diffuse radio emission with a small angular size and a roundish shape is also present.",
    "DIFFUSE-LARGE": "A large-scale diffuse emission with an irregular shape covers a large portion of "
                     "the image.",
    "FILAMENT": "Extended filamentary structures are visible.",
    "ARTIFACT": "Some radio sources present in the image are poorly imaged and surrounded by imaging "
                "artefacts having a ring pattern.",
    "PECULIAR": "Some sources have a peculiar, anomalous morphology.",
    "MOSAICKING": "Residual patterns of the mosaicking process are visible in the sky background.",
    "BORDER": "The image has blank regions without data along its borders.",
}
SMORPH_WORDS = {"1": "one", "2": "two", "3": "three"}
FR_SENTENCES = {
    "FR-I": "The main source is a radio galaxy of Fanaroff-Riley type I (FR-I): its emission is strongest "
            "close to the core and fades along the jets.",
    "FR-II": "The main source is a radio galaxy of Fanaroff-Riley type II (FR-II): edge-brightened lobes "
             "with hotspots lie far from the core.",
}
CLASS_NOUNS = {  # box classes → (singular, plural) for descriptions
    "COMPACT": ("compact radio source", "compact radio sources"),
    "EXTENDED": ("extended radio source (single island)", "extended radio sources (single island)"),
    "EXTENDED-MULTISLAND": ("extended radio source made of several islands",
                            "extended radio sources made of several islands"),
    "SPURIOUS": ("spurious source (imaging artefact)", "spurious sources (imaging artefacts)"),
    "FLAGGED": ("source flagged as poorly imaged", "sources flagged as poorly imaged"),
    "RADIO-GALAXY": ("radio galaxy", "radio galaxies"),
    "C": ("compact radio galaxy", "compact radio galaxies"),
    "FR-I": ("FR-I radio galaxy", "FR-I radio galaxies"),
    "FR-II": ("FR-II radio galaxy", "FR-II radio galaxies"),
    "FR-X": ("hybrid FR-I/FR-II radio galaxy", "hybrid FR-I/FR-II radio galaxies"),
    "R": ("resolved single-peak radio galaxy", "resolved single-peak radio galaxies"),
    "PEC": ("radio galaxy with a peculiar morphology", "radio galaxies with a peculiar morphology"),
}
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass
class ImageFacts(Truth):
    """What is known about one image (``Truth``, and its boxes). ``None``: unknown (the question is not asked).

    ``boxes``: class → picture boxes (normalised, y from the picture's top); only the classes in
    ``box_classes`` are complete, so only those get box questions (with negative answers).
    """

    boxes: dict[str, list[PictureBox]] = field(default_factory=dict)
    box_classes: frozenset[str] = frozenset()
    width_arcsec: float | None = None     # the picture's angular size, for sizes in descriptions
    height_arcsec: float | None = None

    def __post_init__(self):
        if self.labels is not None:
            labels = set(self.labels)
            if self.border is None:
                self.border = "BORDER" in labels
            if self.artefact is None:
                self.artefact = "ARTIFACT" in labels
            if self.radio_galaxy is None:
                self.radio_galaxy = "RADIO-GALAXY" in labels
            if self.peculiarity is None:
                self.peculiarity = peculiarity_of(labels)


# ------------------------------------------------------------------ description
def _count(n: int, cls: str) -> str:
    one, many = CLASS_NOUNS.get(cls, (cls.lower() + " source", cls.lower() + " sources"))
    return f"{NUMBERS[n] if n < len(NUMBERS) else n} {one if n == 1 else many}"


def _where(box: PictureBox) -> str:
    """Position words in the picture (top = the picture's top row)."""
    xc, yc, _, _ = box.to_yolo()
    v = "top" if yc < 1 / 3 else "bottom" if yc > 2 / 3 else ""
    h = "left" if xc < 1 / 3 else "right" if xc > 2 / 3 else ""
    if not v and not h:
        return "near the centre of the image"
    return f"in the {'-'.join(w for w in (v, h) if w)} part of the image"


def _size(box: PictureBox, facts: ImageFacts) -> str:
    _, _, w, h = box.to_yolo()
    if facts.width_arcsec and facts.height_arcsec:
        size = max(w * facts.width_arcsec, h * facts.height_arcsec)
        return f"about {size / 60:.1f} arcmin across" if size >= 120 else f"about {size:.0f} arcsec across"
    return f"spanning about {max(w, h):.0%} of the image"


def describe(facts: ImageFacts) -> str:
    """The templated description of an image from its annotations (static: same facts, same text)."""
    parts = [INTRO]
    if facts.labels is not None:
        labels = set(facts.labels)
        for lab, sentence in LABEL_SENTENCES.items():
            if lab in labels:
                if lab == "EXTENDED" and "COMPACT" not in labels:
                    sentence = "The image contains one or more extended radio sources."
                if lab == "RADIO-GALAXY" and "EXTENDED" not in labels:
                    sentence = "Some sources are likely radio galaxies."
                parts.append(sentence)
    elif facts.border:
        parts.append(LABEL_SENTENCES["BORDER"])
    if facts.smorph:
        c, p = facts.smorph[0], facts.smorph[3]
        islands = "a single island" if c == "1" else f"{SMORPH_WORDS[c]} separated islands"
        peaks = f"{SMORPH_WORDS[p]} flux intensity peak{'s' if p != '1' else ''}"
        parts.append(f"It is centred on a radio source made of {islands} with {peaks} in total "
                     f"(morphological class {facts.smorph}).")
    if facts.fr_class in FR_SENTENCES:
        parts.append(FR_SENTENCES[facts.fr_class])
    counted = [c for c in facts.boxes if c in facts.box_classes and c != "RADIO-GALAXY"]
    if counted:
        listed = [_count(len(facts.boxes[c]), c) for c in counted if facts.boxes[c]]
        if listed:
            parts.append("The annotated objects are " + _join(listed) + ".")
        big = sorted((b for c in counted if c not in ("COMPACT", "SPURIOUS", "FLAGGED")
                      for b in facts.boxes[c]), key=lambda b: -(b.x1 - b.x0) * (b.y1 - b.y0))[:3]
        for b in big:
            noun = CLASS_NOUNS.get(b.label or "", (str(b.label).lower() + " source",))[0]
            article = "An" if noun[0] in "aeiouAEIOU" else "A"
            parts.append(f"{article} {noun} lies {_where(b)}, {_size(b, facts)}.")
    return " ".join(parts)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ------------------------------------------------------------------ questions and answers
@dataclass(frozen=True)
class Turn:
    question: str
    answer: str
    task: str          # catalogue task name, "describe", "border" (no catalogue task) or "augmented"


def box_tasks() -> list[Task]:
    """The catalogue's box tasks (one per class)."""
    return [t for t in load_tasks().values() if t.kind == "boxes"]


def _box_paraphrase(task: Task) -> str:
    m = re.search(r"all (.+?) present in the image", task.prompt)
    noun = m.group(1) if m else f"{(task.box_class or 'radio').lower()} sources"
    return f"Where are the {noun} in this image? Give their bounding box coordinates."


def _pick(rng, catalogue_prompt: str, alternatives, phrasing: str) -> str:
    if phrasing == "mixed" and alternatives and rng.random() < 0.5:
        return alternatives[int(rng.integers(len(alternatives)))]
    return catalogue_prompt


def reading_order(boxes: list[PictureBox]) -> list[PictureBox]:
    """Boxes sorted top to bottom, then left to right (by rounded centre)."""
    return sorted(boxes, key=lambda b: (round((b.y0 + b.y1) / 2, 2), round((b.x0 + b.x1) / 2, 2)))


def default_turns(facts: ImageFacts, rng, phrasing: str = "catalogue") -> list[Turn]:
    """The description first, then every question the facts can answer, in a seeded order."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing {phrasing!r}: use one of {PHRASINGS}")
    first = Turn(DESCRIBE_QUESTIONS[int(rng.integers(len(DESCRIBE_QUESTIONS)))], describe(facts), "describe")
    turns: list[Turn] = []

    def ask(name: str, answer: str):
        task = get_task(name)
        turns.append(Turn(_pick(rng, task.prompt, task.paraphrases, phrasing), answer, name))

    if facts.labels is not None:
        b1 = get_task("b1-extended-diffuse")                     # its labels and "none" from the YAML
        found = [lab for lab in b1.labels if lab in facts.labels]
        ask(b1.name, ", ".join(found) if found else b1.none_label)
    if facts.smorph is not None:
        ask("b2-source-morphology", facts.smorph)
    if facts.radio_galaxy is not None:
        ask("b3-radio-galaxy", "Yes" if facts.radio_galaxy else "No")
    if facts.artefact is not None:
        ask("b4-ring-artefact", "Yes" if facts.artefact else "No")
    if facts.peculiarity is not None:
        ask("b5-peculiarity", facts.peculiarity)
    if facts.fr_class is not None:
        ask("b6-fr-class", facts.fr_class)
    if facts.border is not None:
        catalogue = load_tasks().get(BORDER_TASK)
        if catalogue is not None:
            ask(BORDER_TASK, "Yes" if facts.border else "No")
        else:
            q = BORDER_QUESTIONS[0]
            if phrasing == "mixed":
                q = BORDER_QUESTIONS[int(rng.integers(len(BORDER_QUESTIONS)))]
            turns.append(Turn(q, "Yes" if facts.border else "No", "border"))
    complete = {c.upper() for c in facts.box_classes}
    for task in box_tasks():
        cls = (task.box_class or "").upper()
        if cls not in complete:
            continue
        boxes = reading_order([b for c, bs in facts.boxes.items() if c.upper() == cls for b in bs])
        answer = format_yolo_boxes(boxes) if boxes else (task.negative_answer or "NONE")
        turns.append(Turn(_pick(rng, task.prompt, (_box_paraphrase(task),), phrasing), answer, task.name))
    order = rng.permutation(len(turns)) if turns else []
    return [first] + [turns[i] for i in order]


def question_index() -> dict[str, str]:
    """Every question text the builders write (catalogue prompts, paraphrases) → its task name."""
    index = {q: "describe" for q in DESCRIBE_QUESTIONS}
    index.update({q: "border" for q in BORDER_QUESTIONS})
    for task in load_tasks().values():
        index[task.prompt.strip()] = task.name
        for q in task.paraphrases:
            index[q] = task.name
        if task.kind == "boxes":
            index[_box_paraphrase(task)] = task.name
    return index


def to_llava(record_id: str, image: str, turns: list[Turn]) -> dict:
    """A record in the paper's LLaVA format: ``<image>`` only at the start of the first human turn."""
    conv = []
    for i, t in enumerate(turns):
        conv.append({"from": "human", "value": ("<image>\n" if i == 0 else "") + t.question})
        conv.append({"from": "gpt", "value": t.answer})
    return {"id": record_id, "image": image, "conversations": conv}


# ------------------------------------------------------------------ VLM-augmented turns
AUGMENT_PROMPT = (
    "You are given a radio astronomical image and its description:\n{description}\n\n"
    "Write {n} different questions that a user could ask about this image, each with its answer. "
    "Base the answers only on the description and on what is visible in the image. Reply with a JSON "
    "list of objects with the keys \"question\" and \"answer\", and nothing else."
)


def parse_generated_pairs(text: str, n_max: int = 10, known: set[str] | None = None) -> list[Turn]:
    """Validated question/answer pairs from a model's JSON reply; raises ValueError saying why not."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise ValueError("no JSON list in the reply")
    try:
        items = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(items, list):
        raise ValueError("the reply is not a JSON list")
    seen = {q.strip().lower() for q in (known or set())}
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        q, a = item.get("question"), item.get("answer")
        if not (isinstance(q, str) and isinstance(a, str)):
            continue
        q, a = q.strip(), a.strip()
        if not q or not a or len(q) > 500 or len(a) > 1500 or "<image>" in q + a or q.lower() in seen:
            continue
        seen.add(q.lower())
        out.append(Turn(q, a, "augmented"))
        if len(out) >= n_max:
            break
    if not out:
        raise ValueError("no valid question/answer pair in the reply")
    return out


def augment_turns(assistant, view, description: str, n: int = 3, temperature: float = 0.5,
                  seed: int = 0, known: set[str] | None = None, max_new_tokens: int = 512) -> list[Turn]:
    """Ask the VLM for ``n`` extra Q&A pairs about the picture; raises ValueError when unusable."""
    import torch

    torch.manual_seed(seed)
    answer = assistant.ask(view, question=AUGMENT_PROMPT.format(description=description, n=n),
                           temperature=temperature, max_new_tokens=max_new_tokens)
    return parse_generated_pairs(answer.text, n_max=n, known=known)
