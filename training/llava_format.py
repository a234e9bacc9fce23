"""The LLaVA conversation format (paper section 3.1): checking files and reporting their statistics.

A dataset is a JSON list of ``{"id", "image", "conversations"}``; conversations alternate
``{"from": "human", ...}`` and ``{"from": "gpt", ...}``, starting with a human turn whose value
begins with ``<image>\\n``; ``<image>`` appears nowhere else. ``image`` is relative to the image
folder (the JSON file's folder for files written by the builders).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError

IMAGE_TOKEN = "<image>"


def load_records(path: str | Path) -> list[dict]:
    """Read a LLaVA JSON list; RadioLlavaError when the file is not one."""
    path = Path(path)
    if not path.is_file():
        raise RadioLlavaError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise RadioLlavaError(f"{path}: a LLaVA dataset is a JSON list of records")
    return data


def record_problems(rec, image_folder: Path | None = None) -> list[str]:
    """What is wrong with one record (empty when it is valid)."""
    if not isinstance(rec, dict):
        return ["not an object"]
    out = []
    if set(rec) - {"id", "image", "conversations"}:
        out.append(f"unexpected keys {sorted(set(rec) - {'id', 'image', 'conversations'})}")
    for key in ("id", "image"):
        if not isinstance(rec.get(key), str) or not rec.get(key):
            out.append(f"'{key}' missing or not a string")
    conv = rec.get("conversations")
    if not isinstance(conv, list) or not conv:
        return out + ["'conversations' missing or empty"]
    if len(conv) % 2:
        out.append("odd number of turns (a question without an answer)")
    for i, turn in enumerate(conv):
        who = "human" if i % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != who or not isinstance(turn.get("value"), str):
            out.append(f"turn {i}: expected {{\"from\": \"{who}\", \"value\": text}}")
            continue
        value = turn["value"]
        if i == 0 and not value.startswith(IMAGE_TOKEN + "\n"):
            out.append("the first human turn does not start with '<image>\\n'")
        if IMAGE_TOKEN in (value[len(IMAGE_TOKEN):] if i == 0 else value):
            out.append(f"turn {i}: extra '<image>' token")
        if not value.strip():
            out.append(f"turn {i}: empty text")
    if image_folder is not None and isinstance(rec.get("image"), str):
        if not (Path(image_folder) / rec["image"]).is_file():
            out.append(f"image {rec['image']} not found in {image_folder}")
    return out


def validate(path: str | Path, check_images: bool = True) -> list[str]:
    """Problems of every record of a file, as 'id: problem' lines (empty when the file is valid)."""
    path = Path(path)
    folder = path.parent if check_images else None
    lines = []
    for i, rec in enumerate(load_records(path)):
        rid = rec.get("id", f"#{i}") if isinstance(rec, dict) else f"#{i}"
        lines += [f"{rid}: {p}" for p in record_problems(rec, folder)]
    return lines


def dataset_stats(paths: list[str | Path], tokenizer: str | None = None) -> dict:
    """Images, turns, questions per task, label and box counts (answers parsed by the core),
    words/characters and, with a model folder as ``tokenizer``, tokens."""
    from glue_radiollava.core.parsing import parse_answer, parse_yesno
    from glue_radiollava.core.tasks import load_tasks

    from .qa import question_index

    tok = None
    if tokenizer:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(tokenizer)
        except Exception as exc:  # transformers raises many kinds for a bad folder
            raise RadioLlavaError(f"--tokenizer {tokenizer}: cannot load a tokenizer "
                                  f"({str(exc).splitlines()[0][:160]})") from None
    index = question_index()
    tasks = load_tasks()
    stats = {"files": [str(p) for p in paths], "images": 0, "unique_images": 0, "turns": 0,
             "invalid_records": 0, "questions": {}, "labels": {}, "boxes": {}, "negative_box_answers": {},
             "unparsed_answers": {}, "words": {"human": 0, "gpt": 0}, "characters": {"human": 0, "gpt": 0}}
    if tok is not None:
        stats["tokens"] = {"human": 0, "gpt": 0, "max_per_image": 0}
    images = set()
    for path in paths:
        for rec in load_records(path):
            if record_problems(rec):
                stats["invalid_records"] += 1
                continue
            stats["images"] += 1
            images.add(rec["image"])
            conv = rec["conversations"]
            per_image = 0
            for q, a in zip(conv[0::2], conv[1::2]):
                question = q["value"].replace(IMAGE_TOKEN + "\n", "", 1).strip()
                answer = a["value"]
                stats["turns"] += 1
                name = index.get(question, "other")
                task = tasks.get(name)
                stats["questions"][name] = stats["questions"].get(name, 0) + 1
                if name == "border" or (task is not None and task.kind != "text"):
                    parsed = parse_yesno(answer) if task is None else parse_answer(answer, task)
                    if parsed.unparsed:
                        stats["unparsed_answers"][name] = stats["unparsed_answers"].get(name, 0) + 1
                    elif task is not None and task.kind == "boxes":
                        cls = task.box_class or name
                        stats["boxes"][cls] = stats["boxes"].get(cls, 0) + len(parsed.boxes)
                        if not parsed.boxes:
                            stats["negative_box_answers"][cls] = stats["negative_box_answers"].get(cls, 0) + 1
                    else:
                        key = (task.benchmark or name) if task is not None else name
                        counts = stats["labels"].setdefault(key, {})
                        none = (task.none_label,) if task is not None and task.none_label else ()
                        for lab in parsed.labels or none:
                            counts[lab] = counts.get(lab, 0) + 1
                for who, text in (("human", q["value"]), ("gpt", answer)):
                    stats["words"][who] += len(re.findall(r"\S+", text))
                    stats["characters"][who] += len(text)
                    if tok is not None:
                        n = len(tok.encode(text, add_special_tokens=False))
                        stats["tokens"][who] += n
                        per_image += n
            if tok is not None:
                stats["tokens"]["max_per_image"] = max(stats["tokens"]["max_per_image"], per_image)
    stats["unique_images"] = len(images)
    stats["turns_per_image"] = round(stats["turns"] / stats["images"], 2) if stats["images"] else 0.0
    return stats


def format_stats(stats: dict) -> str:
    """A short human-readable report."""
    lines = [f"files: {', '.join(stats['files'])}",
             f"images: {stats['images']} ({stats['unique_images']} distinct pictures), "
             f"turns: {stats['turns']} ({stats['turns_per_image']} per image), "
             f"invalid records: {stats['invalid_records']}"]
    lines.append("questions: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["questions"].items())))
    for bench, counts in sorted(stats["labels"].items()):
        lines.append(f"labels {bench}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if stats["boxes"]:
        neg = stats["negative_box_answers"]
        lines.append("boxes: " + ", ".join(f"{k} {v} (negative answers {neg.get(k, 0)})"
                                           for k, v in sorted(stats["boxes"].items())))
    if stats["unparsed_answers"]:
        bad = sorted(stats["unparsed_answers"].items())
        lines.append("answers the core cannot parse: " + ", ".join(f"{k} {v}" for k, v in bad))
    w = stats["words"]
    lines.append(f"words: questions {w['human']}, answers {w['gpt']}")
    if "tokens" in stats:
        t = stats["tokens"]
        lines.append(f"tokens: questions {t['human']}, answers {t['gpt']}, "
                     f"at most {t['max_per_image']} per image")
    return "\n".join(lines)
