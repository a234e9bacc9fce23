"""The caption-dataset filter (paper 3.1.2): figure + caption records scored by a judge model.

For each record the judge (any model the core loads) gives, through ``Assistant.score`` (the
likelihood of each allowed answer, so every record gets a valid value):
``has_multiplot``, ``is_astromap`` and ``is_corrupted`` (Yes/No, with the probability of Yes) and
``caption_score`` (0–10, the most likely integer); ``n_words`` is counted. The paper's selection
is the default: n_words > 5, no multiplot, not corrupted, caption_score > 7 (is_astromap computed,
not used). Selected records become single-turn LLaVA conversations (describe → caption).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError

from .qa import DESCRIBE_QUESTIONS, Turn, to_llava

YES_NO = ["Yes", "No"]
SCORES = [str(i) for i in range(11)]
Q_MULTIPLOT = ("Does this figure contain multiple plots or frames, either as insets, side by side, stacked "
               "or arranged in a grid?\nAnswer concisely: Yes or No.")
Q_ASTROMAP = ("Figure caption: {caption}\n\nDo the figure and its caption show an astrophysical map with one "
              "or more sources superimposed on the sky background?\nAnswer concisely: Yes or No.")
Q_CORRUPTED = ("Figure caption: {caption}\n\nDoes this caption contain incomplete sentences or corrupted "
               "text?\nAnswer concisely: Yes or No.")
Q_SCORE = ("Figure caption: {caption}\n\nRate the quality of this caption on a scale from 0 (low) to 10 "
           "(high), judging its coherence, informativeness, completeness, clarity and correctness of "
           "English style. Answer with a single integer.")


@dataclass(frozen=True)
class Selection:
    """The paper's caption selection; each rule can be relaxed."""

    min_words: int = 5               # keep n_words > min_words
    min_score: int = 7               # keep caption_score > min_score
    allow_multiplot: bool = False
    allow_corrupted: bool = False
    require_astromap: bool = False

    def keep(self, s: dict) -> bool:
        return (s["n_words"] > self.min_words and s["caption_score"] > self.min_score
                and (self.allow_multiplot or not s["has_multiplot"])
                and (self.allow_corrupted or not s["is_corrupted"])
                and (not self.require_astromap or s["is_astromap"]))


def read_caption_records(path: Path) -> list[dict]:
    """A JSON list or JSON-lines file of ``{"image", "caption"[, "id"]}`` records."""
    path = Path(path)
    if not path.is_file():
        raise RadioLlavaError(f"{path}: no such file")
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise RadioLlavaError(f"{path}: neither a JSON list nor JSON lines ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise RadioLlavaError(f"{path}: expected a list of {{\"image\", \"caption\"}} records")
    return data


def judge(assistant, picture, caption: str) -> dict:
    """The judge's fields for one figure (a PIL image) and its caption."""
    from glue_radiollava.core.profiles import ModelView
    from glue_radiollava.core.transform import Transform

    picture = picture.convert("RGB")
    view = ModelView(picture, Transform.identity(*picture.size), assistant.profile)

    def p_yes(question: str) -> float:
        return float(assistant.score(view, answers=YES_NO, question=question).as_dict()["Yes"])

    multiplot = p_yes(Q_MULTIPLOT)
    astromap = p_yes(Q_ASTROMAP.format(caption=caption))
    corrupted = p_yes(Q_CORRUPTED.format(caption=caption))
    scores = assistant.score(view, answers=SCORES, question=Q_SCORE.format(caption=caption))
    return {"n_words": len(caption.split()), "has_multiplot": multiplot > 0.5, "is_astromap": astromap > 0.5,
            "is_corrupted": corrupted > 0.5, "caption_score": int(scores.best),
            "p_multiplot": round(multiplot, 4), "p_astromap": round(astromap, 4),
            "p_corrupted": round(corrupted, 4),
            "score_mean": round(sum(int(k) * p for k, p in scores.as_dict().items()), 3)}


def filter_captions(input_path: str, out: str, judge_model, selection: Selection | None = None,
                    on_error: str = "skip", seed: int = 0, progress: bool = True, log=None) -> dict:
    """Score every record with ``judge_model`` (a model spec or an Assistant), write the selected
    ones as LLaVA conversations to ``out`` and all scores to ``OUT.scores.json``; return a report."""
    from PIL import Image
    from tqdm import tqdm

    log = log or (lambda msg: print(msg, file=sys.stderr))
    selection = selection or Selection()
    if on_error not in ("skip", "stop"):
        raise RadioLlavaError(f"--on-error {on_error!r}: use skip or stop")
    out_path = Path(out)
    if out_path.suffix.lower() != ".json" or not out_path.parent.exists():
        raise RadioLlavaError(f"--out {out}: give a .json file in an existing folder")
    src = Path(input_path)
    records = read_caption_records(src)
    if isinstance(judge_model, str):
        from glue_radiollava.core.assistant import Assistant

        assistant = Assistant(judge_model)
    else:
        assistant = judge_model
    scored, selected, skipped = [], [], []
    bar = tqdm(records, desc="judge captions", unit="fig", disable=None if progress else True)
    for i, rec in enumerate(bar):
        rid = f"#{i}"
        if isinstance(rec, dict):
            rid = str(rec.get("id") or Path(str(rec.get("image", rid))).stem)
        try:
            caption = rec.get("caption") if isinstance(rec, dict) else None
            if not isinstance(caption, str) or not caption.strip():
                raise ValueError("no caption text")
            if not isinstance(rec.get("image"), str):
                raise ValueError("no image path")
            image = Path(rec["image"]) if Path(rec["image"]).is_absolute() else src.parent / rec["image"]
            if not image.is_file():
                raise ValueError(f"missing image file {image}")
            try:
                with Image.open(image) as im:
                    im.load()
                    picture = im.convert("RGB")
            except OSError as exc:
                raise ValueError(f"unreadable image {image} ({exc})") from None
        except ValueError as exc:
            if on_error == "stop":
                raise RadioLlavaError(f"caption record {rid}: {exc} "
                                      "(use --on-error skip to skip it)") from None
            skipped.append(f"{rid}: {exc}")
            log(f"skipped {rid}: {exc}")
            continue
        caption = " ".join(rec["caption"].split())
        fields = judge(assistant, picture, caption)
        keep = selection.keep(fields)
        scored.append({"id": rid, "image": str(image), "caption": caption, **fields, "selected": keep})
        if keep:
            rel = os.path.relpath(image.resolve(), out_path.parent.resolve())
            pick = int(hashlib.sha256(f"{seed}:{rid}".encode()).hexdigest(), 16) % len(DESCRIBE_QUESTIONS)
            selected.append(to_llava(rid, rel, [Turn(DESCRIBE_QUESTIONS[pick], caption, "caption")]))
    _write(out_path, selected)
    scores_path = out_path.with_name(out_path.stem + ".scores.json")
    judge_info = assistant.loaded.provenance() if hasattr(assistant, "loaded") else None
    _write(scores_path, {"selection": selection.__dict__, "judge": judge_info, "records": scored,
                         "skipped": skipped})
    return {"records": len(records), "scored": len(scored), "selected": len(selected),
            "skipped": len(skipped), "files": [str(out_path), str(scores_path)]}


def _write(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
