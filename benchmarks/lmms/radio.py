"""The radio benchmarks B1–B7 as lmms-eval tasks: documents, prompts, pictures, scoring.

Documents come from ``benchmarks.data`` (any ``--data`` that ``radiollava bench run`` reads: a
reference JSON, a simulator folder, a built-in set); prompts and labels from the task catalogue
(``resources/tasks``); parsing from ``core.parsing``; metrics from ``benchmarks.scoring``. So the
numbers lmms-eval reports for ``radio_bN`` are those ``radiollava bench run --task BN`` reports for
the same samples (generate mode, no shots).

Where the data is: the task's ``dataset_kwargs: {data: SPEC, data_root: DIR}`` (programmatic use),
else ``$RADIOLLAVA_LMMS_DATA_B6`` (one benchmark) or ``$RADIOLLAVA_LMMS_DATA`` (all), with
``$RADIOLLAVA_DATA`` as the shared data folder for the built-in sets.

A document is ``{"id", "bench", "sample"}``, the sample as JSON (path, cutout, truth, boxes, and for
B7 the classes asked). The ``radiollava`` model renders the FITS file itself with the model's own
preprocessing profile and asks the catalogue task (as the benchmark runner does); other lmms-eval
models get ``doc_to_visual``'s picture (the ``radio-llava`` profile) and ``doc_to_text``'s prompt.
"""

from __future__ import annotations

import json
import os

from glue_radiollava.core.errors import RadioLlavaError

ENV = "RADIOLLAVA_LMMS_DATA"
DEFAULT_PROFILE = "radio-llava"
METRICS = ("macro_f1", "accuracy", "unparsed")


# ------------------------------------------------------------------ documents
def data_spec(code: str, dataset_kwargs: dict | None) -> tuple[str, str | None]:
    kwargs = dict(dataset_kwargs or {})
    spec = kwargs.get("data") or os.environ.get(f"{ENV}_{code}") or os.environ.get(ENV)
    if not spec:
        raise RadioLlavaError(f"radio_{code.lower()}: no data; set {ENV}_{code} or {ENV} to a reference JSON, a "
                              "simulator folder or a built-in set (see `radiollava bench run --help`)")
    return str(spec), kwargs.get("data_root")


def documents(code: str, spec: str, root=None) -> list[dict]:
    """The lmms-eval documents of benchmark ``code`` in ``spec`` (read by ``benchmarks.data``)."""
    from .. import data as bdata

    ds = bdata.load_one(spec, code, root)
    classes = list(ds.bench.labels) if ds.bench.kind == "boxes" else None
    docs = []
    for s in ds.samples:
        sample = {"id": s.id, "path": s.path, "cutout": list(s.cutout) if s.cutout else None,
                  "truth": list(s.truth), "boxes": [[b.label, *b.box] for b in s.boxes], "where": s.where}
        if classes:
            sample["classes"] = classes
        docs.append({"id": s.id, "bench": ds.bench.code, "sample": json.dumps(sample)})
    return docs


def sample_of(doc: dict):
    """The ``benchmarks.data.Sample`` a document stands for."""
    from ..data import Sample, TruthBox

    s = json.loads(doc["sample"])
    return Sample(s["id"], s["path"], tuple(s["truth"]), tuple(s["cutout"]) if s.get("cutout") else None,
                  tuple(TruthBox(b[0], tuple(b[1:])) for b in s.get("boxes", [])), s.get("where", ""))


def bench_of(doc: dict):
    """The BenchTask of a document (B7: with the classes its data set asks for)."""
    from dataclasses import replace

    from ..tasks import get_bench

    bench = get_bench(doc["bench"])
    classes = json.loads(doc["sample"]).get("classes")
    return replace(bench, labels=tuple(classes)) if classes else bench


def is_radio_doc(doc) -> bool:
    return isinstance(doc, dict) and "bench" in doc and "sample" in doc


# ------------------------------------------------------------------ what other models see
class _DefaultRenderer:
    """Renders like an Assistant does, with the default profile (models without their own)."""

    def view(self, cutout):
        from glue_radiollava.core.profiles import render

        return render(cutout, DEFAULT_PROFILE)


def default_view(doc):
    from ..runner import render_sample

    return render_sample(_DefaultRenderer(), sample_of(doc))


def doc_to_visual(doc) -> list:
    return [default_view(doc).picture]


def doc_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """The catalogue prompt (B7: the first class's box prompt; the radiollava model asks every class)."""
    from ..tasks import box_tasks

    bench = bench_of(doc)
    if bench.kind == "boxes":
        return box_tasks()[bench.labels[0]].prompt
    return bench.prompt


def doc_to_target(doc) -> str:
    from ..tasks import answer_text

    bench = bench_of(doc)
    truth = tuple(json.loads(doc["sample"])["truth"])
    return ", ".join(truth) if bench.kind == "boxes" else answer_text(bench, truth)


# ------------------------------------------------------------------ scoring
def record_from_text(doc, text: str) -> dict:
    """A prediction record like the benchmark runner's, from the model's answer text."""
    from glue_radiollava.core.parsing import parse_answer

    bench = bench_of(doc)
    sample = json.loads(doc["sample"])
    rec = {"task": bench.code, "id": sample["id"], "truth": sample["truth"]}
    if bench.kind == "boxes":
        rec["truth_boxes"] = sample.get("boxes", [])
        rec["answers"] = _box_answers(doc, bench, text)
        rec["parsed"] = all(a["parsed"] for a in rec["answers"].values())
        return rec
    parsed = parse_answer(text, bench.task)
    rec.update(answer=text, pred=list(parsed.labels) if parsed.parsed else [], parsed=bool(parsed.parsed),
               problem=parsed.problem)
    return rec


def _box_answers(doc, bench, text: str) -> dict:
    """B7: the radiollava model answers every class as JSON (mosaic boxes, as the runner records
    them); another model's text is its answer to the first class's prompt, in normalised boxes."""
    try:
        answers = json.loads(text)["answers"]
        if isinstance(answers, dict):
            return answers
    except (ValueError, TypeError, KeyError):
        pass
    from glue_radiollava.core.parsing import parse_answer

    from ..tasks import box_tasks

    cls = bench.labels[0]
    view = default_view(doc)
    parsed = parse_answer(text, box_tasks()[cls], picture_size=view.picture.size, transform=view.transform)
    boxes = [[round(v, 3) for v in view.transform.box_to_mosaic(b.x0, b.y0, b.x1, b.y1)]
             for b in parsed.boxes if b.valid]
    out = {cls: {"answer": text, "parsed": bool(parsed.parsed), "problem": parsed.problem, "boxes": boxes,
                 "flagged": sum(not b.valid for b in parsed.boxes)}}
    for other in bench.labels[1:]:
        out[other] = {"answer": "", "parsed": False, "problem": "not asked (one prompt per document)",
                      "boxes": [], "flagged": 0}
    return out


def process_results(doc, results) -> dict:
    rec = record_from_text(doc, results[0] if results else "")
    return {name: rec for name in METRICS}


def metrics_of(records: list[dict], iou: float = 0.5) -> dict:
    """``scoring``'s metrics of a task's records (as the runner computes them, without bootstrap)."""
    from dataclasses import replace

    from ..scoring import metrics_for
    from ..tasks import get_bench

    if not records:
        return {}
    bench = get_bench(records[0]["task"])
    if bench.kind == "boxes":
        classes = list(records[0]["answers"])
        bench = replace(bench, labels=tuple(classes))
    return metrics_for(bench, records, iou, 0, 0)


def aggregate_macro_f1(records) -> float:
    return float(metrics_of(list(records)).get("macro_f1", 0.0))


def aggregate_accuracy(records) -> float:
    return float(metrics_of(list(records)).get("accuracy", 0.0))


def aggregate_unparsed(records) -> float:
    return float(metrics_of(list(records)).get("unparsed", 0))
