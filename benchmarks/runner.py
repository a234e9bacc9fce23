"""Run benchmarks: load the data, ask the model (generate or score, batched, sharded), write results.

A run folder holds
- ``predictions.jsonl``: one line per sample and task (answer text, parsed labels or boxes,
  probabilities in score mode, timing), appended as batches finish, so an interrupted run keeps
  what it did and ``--resume`` continues it;
- ``metrics.json``: per task (``B1`` … ``B7``) the metrics of ``scoring``, throughput and provenance;
- ``run.json``: the run's options, model, preprocessing profile, data, versions and times.

Under ``accelerate launch`` every process takes its share of the samples
(``PartialState.split_between_processes``), writes ``predictions.rank<i>.jsonl``, and the main
process gathers them into ``predictions.jsonl`` and scores. Without accelerate it is one process.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.files import JsonlAppender
from glue_radiollava.core.processes import process_state

from . import data as bdata
from .records import METRICS, PREDICTIONS, RUN, jsonable, read_predictions, versions, write_json, write_predictions
from .scoring import metrics_for, throughput
from .tasks import BenchTask, answer_text, box_tasks, candidates, decide

# options that must match when a run is resumed
RESUME_KEYS = ("data", "model", "adapter", "quantize", "mode", "shots", "shots_from", "limit", "seed",
               "max_new_tokens", "iou", "classes", "bootstrap", "dtype")


@dataclass
class RunOptions:
    tasks: list[str] | str
    data: str
    out: str
    model: str = "nano"
    adapter: str | None = None
    quantize: str | None = None
    dtype: str | None = None
    device: str | None = None
    mode: str = "generate"
    shots: int = 0
    shots_from: str | None = None
    batch_size: int = 1
    limit: int | None = None
    max_new_tokens: int | None = None
    iou: float = 0.5
    classes: list[str] | None = None
    seed: int = 0
    bootstrap: int = 1000
    data_root: str | None = None
    resume: bool = False
    trust_remote_code: bool = False
    progress: bool = True
    name: str | None = None
    threads: int | None = None


# ------------------------------------------------------------------ samples → pictures
def render_sample(assistant, sample):
    """Open the sample's image, cut its box (default: the whole image) and render it for the model."""
    from glue_radiollava.core.image import RadioImage

    image = RadioImage.open(sample.path)
    try:
        if sample.cutout is not None:
            cut = image.cutout_pixels(*sample.cutout)
        else:
            ny, nx = image.shape
            cut = image.cutout_pixels(0, 0, nx, ny)
        return assistant.view(cut)
    except RadioLlavaError as exc:
        raise RadioLlavaError(f"{sample.where or sample.id}: {exc}") from None
    finally:
        image.close()


def truth_picture_boxes(view, sample, label: str):
    """The sample's true boxes of class ``label`` as normalised picture boxes (few-shot answers)."""
    from glue_radiollava.core.parsing import PictureBox

    out = []
    for b in sample.boxes:
        if b.label != label:
            continue
        u0, v0, u1, v1 = view.transform.mosaic_box_to_normalised(*b.box)
        u0, v0, u1, v1 = max(u0, 0.0), max(v0, 0.0), min(u1, 1.0), min(v1, 1.0)
        if u1 > u0 and v1 > v0:
            out.append(PictureBox(u0, v0, u1, v1, label=label))
    return out


def boxes_text(task, boxes) -> str:
    from glue_radiollava.core.parsing import format_yolo_boxes

    return format_yolo_boxes(boxes) if boxes else (task.negative_answer or "NONE")


# ------------------------------------------------------------------ asking
class TaskRunner:
    """Asks one benchmark's questions for batches of samples and returns prediction records."""

    def __init__(self, assistant, bench: BenchTask, mode: str, examples, max_new_tokens: int):
        self.assistant = assistant
        self.bench = bench
        self.mode = "generate" if bench.kind == "boxes" else mode
        self.examples = examples        # B1–B6: list[Example]; B7: class → list[Example]
        self.max_new_tokens = max_new_tokens
        self.boxes = box_tasks()

    def prepare(self, samples) -> list:
        """Render the samples' pictures (runs in a helper thread while the model works)."""
        return [render_sample(self.assistant, s) for s in samples]

    def run(self, samples) -> list[dict]:
        """Render and ask one batch (no overlap; ``run_batches`` overlaps rendering with the model)."""
        t0 = time.perf_counter()
        recs = self.ask(samples, self.prepare(samples))
        for rec in recs:
            rec["seconds"] = round((time.perf_counter() - t0) / len(recs), 5)
        return recs

    def ask(self, samples, views) -> list[dict]:
        """Ask the model about rendered ``views`` of ``samples`` → prediction records."""
        from glue_radiollava.core.batching import ask_batch, score_batch

        t1 = time.perf_counter()
        recs = [{"task": self.bench.code, "id": s.id, "file": s.path,
                 "cutout": list(s.cutout) if s.cutout else None, "truth": list(s.truth),
                 "mode": self.mode} for s in samples]
        if self.bench.kind == "boxes":
            self._detect(views, samples, recs, ask_batch)
        elif self.mode == "score":
            scores = score_batch(self.assistant, views, [c for c, _ in candidates(self.bench)],
                                 task=self.bench.task, examples=self.examples)
            for rec, sc in zip(recs, scores):
                labels, per_label = decide(self.bench, sc.probs)
                rec.update(answer=answer_text(self.bench, labels), pred=list(labels), parsed=True, problem=None,
                           probs={k: round(v, 6) for k, v in per_label.items()}, new_tokens=0)
                if self.bench.kind == "multi":
                    rec["answer_probs"] = {a: round(p, 6) for a, p in zip(sc.labels, sc.probs)}
        else:
            answers = ask_batch(self.assistant, views, task=self.bench.task, examples=self.examples,
                                max_new_tokens=self.max_new_tokens)
            for rec, ans in zip(recs, answers):
                rec.update(answer=ans.text, pred=list(ans.labels) if ans.parsed.parsed else [],
                           parsed=bool(ans.parsed.parsed), problem=ans.parsed.problem, probs=None,
                           new_tokens=ans.timings["new_tokens"])
        t2 = time.perf_counter()
        for rec in recs:
            rec["model_s"] = round((t2 - t1) / len(recs), 5)
        return recs

    def _detect(self, views, samples, recs, ask_batch) -> None:
        for rec, s in zip(recs, samples):
            rec["truth_boxes"] = [[b.label, *[round(v, 3) for v in b.box]] for b in s.boxes]
            rec["answers"] = {}
        for cls in self.bench.labels:
            task = self.boxes[cls]
            answers = ask_batch(self.assistant, views, task=task, examples=self.examples.get(cls, []),
                                max_new_tokens=self.max_new_tokens)
            for rec, ans in zip(recs, answers):
                parsed = ans.parsed
                boxes = [[round(v, 3) for v in box] for _, box in ans.pixel_boxes]   # mapped once, by the Assistant
                flagged = sum(not b.valid for b in parsed.boxes)
                rec["answers"][cls] = {"answer": ans.text, "parsed": bool(parsed.parsed), "problem": parsed.problem,
                                       "boxes": boxes, "flagged": flagged,
                                       "new_tokens": ans.timings["new_tokens"]}
        for rec in recs:
            rec["parsed"] = all(a["parsed"] for a in rec["answers"].values())
            rec["new_tokens"] = sum(a["new_tokens"] for a in rec["answers"].values())


def run_batches(runner: TaskRunner, samples, batch_size: int):
    """Yield each batch's records; the next batch is rendered in a helper thread meanwhile.

    Each record's ``seconds`` is its share of the wall time since the previous batch ended, so the
    sum over records is the elapsed time with rendering and the model overlapped.
    """
    from concurrent.futures import ThreadPoolExecutor

    batches = [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as pool:
        pending = pool.submit(runner.prepare, batches[0])
        t0 = time.perf_counter()
        for k, batch in enumerate(batches):
            views = pending.result()
            if k + 1 < len(batches):
                pending = pool.submit(runner.prepare, batches[k + 1])
            recs = runner.ask(batch, views)
            t1 = time.perf_counter()
            for rec in recs:
                rec["seconds"] = round((t1 - t0) / len(recs), 5)
            t0 = t1
            yield recs


def make_examples(assistant, bench: BenchTask, shots) -> object:
    """Few-shot examples (core ``Example``) from labelled samples: the answer a perfect model gives."""
    from glue_radiollava.core.assistant import Example

    if bench.kind == "boxes":
        tasks = box_tasks()
        out = {}
        views = [(s, render_sample(assistant, s)) for s in shots]
        for cls in bench.labels:
            out[cls] = [Example(v, tasks[cls].prompt, boxes_text(tasks[cls], truth_picture_boxes(v, s, cls)))
                        for s, v in views]
        return out
    return [Example(render_sample(assistant, s), bench.prompt, answer_text(bench, s.truth)) for s in shots]


# ------------------------------------------------------------------ the run
def _check_out(out: Path, opts: RunOptions) -> dict:
    """The earlier run's records when resuming; refuse to overwrite a run otherwise.

    Every process checks (and fails alike, so none waits for the others forever); nothing is
    rewritten (each process's appender cuts a torn last line of its own file).
    """
    has_run = out.is_dir() and ((out / PREDICTIONS).exists() or any(out.glob("predictions.rank*.jsonl")))
    if has_run and not opts.resume:
        raise RadioLlavaError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if not has_run:
        return {}
    old = out / RUN
    if old.is_file():
        try:
            before = json.loads(old.read_text()).get("options", {})
        except ValueError:
            before = {}
        now = asdict(opts)
        diff = [k for k in RESUME_KEYS if k in before and before[k] != now.get(k)]
        if diff:
            changes = ", ".join(f"--{k.replace('_', '-')} {before[k]!r} → {now.get(k)!r}" for k in diff)
            raise RadioLlavaError(f"{out} was run with other options ({changes}); resume with the same "
                                  "options or choose another --out")
    return read_predictions(out)


def run(opts: RunOptions) -> dict | None:
    """Run the benchmarks as ``opts`` says; returns the metrics (None on processes other than the main one)."""
    from tqdm import tqdm

    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import ModelSpec

    if opts.mode not in ("generate", "score"):
        raise RadioLlavaError(f"--mode {opts.mode!r}: use generate or score")
    if opts.batch_size < 1:
        raise RadioLlavaError("--batch-size must be at least 1")
    if opts.shots < 0:
        raise RadioLlavaError("--shots must be 0 or more")
    datasets = bdata.load(opts.data, opts.tasks, opts.data_root, opts.classes)
    plans = {}                      # code → (dataset, few-shot samples, samples to evaluate)
    for ds in datasets:
        bench = ds.bench
        if opts.shots_from:
            pool = bdata.load_one(opts.shots_from, bench.code, opts.data_root, list(bench.labels)
                                  if bench.kind == "boxes" else None)
            shots = bdata.pick_balanced(pool.samples, opts.shots, opts.seed)
            if len(shots) < opts.shots:
                raise RadioLlavaError(f"--shots-from {opts.shots_from} has only {len(pool)} {bench.code} samples")
            samples = ds.samples
        else:
            shots, samples = bdata.choose_shots(ds.samples, opts.shots, opts.seed)
        samples = bdata.limit_samples(samples, opts.limit, opts.seed)
        if not samples:
            raise RadioLlavaError(f"--data {opts.data}: no {bench.code} sample left to evaluate")
        plans[bench.code] = (ds, shots, samples)

    if opts.threads:
        import torch

        torch.set_num_threads(int(opts.threads))
    out = Path(opts.out)
    state = process_state(opts.device)
    done = _check_out(out, opts)
    state.wait_for_everyone()
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    device = opts.device
    if device is None and state.num_processes > 1:
        device = str(state.device)
    spec = ModelSpec(opts.model, opts.adapter, opts.quantize, opts.dtype, device,
                     trust_remote_code=opts.trust_remote_code)
    assistant = Assistant(spec)
    model_prov = assistant.loaded.provenance()
    profile = assistant.profile.to_dict()

    if state.is_main_process:
        write_json(out / RUN, _run_info(opts, model_prov, profile, state, started, None, None, None))
    part = out / (PREDICTIONS if state.num_processes == 1 else f"predictions.rank{state.process_index}.jsonl")
    for code, (ds, shots, samples) in plans.items():
        bench = ds.bench
        todo = [s for s in samples if (code, s.id) not in done]
        max_new = opts.max_new_tokens or bench.max_new_tokens
        examples = make_examples(assistant, bench, shots)
        runner = TaskRunner(assistant, bench, opts.mode, examples, max_new)
        with state.split_between_processes(todo) as mine:
            bar = tqdm(total=len(mine), desc=f"{code} ({runner.mode})", unit="img", leave=True,
                       disable=not opts.progress or not state.is_local_main_process, file=sys.stderr)
            try:
                with JsonlAppender(part, default=jsonable) as f:   # cuts a torn last line first
                    try:
                        for recs in run_batches(runner, mine, opts.batch_size):
                            f.write(*recs)
                            bar.update(len(recs))
                    except RadioLlavaError as exc:
                        raise RadioLlavaError(f"{exc} (predictions so far are in {out}; fix it and "
                                              "run again with --resume)") from None
            finally:
                bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    records = read_predictions(out)
    metrics, shot_ids = {}, {}
    for code, (ds, shots, samples) in plans.items():
        bench = ds.bench
        recs = [records[(code, s.id)] for s in samples if (code, s.id) in records]
        m = metrics_for(bench, recs, opts.iou, opts.bootstrap, opts.seed)
        m["mode"] = "generate" if bench.kind == "boxes" else opts.mode
        if bench.kind == "boxes" and opts.mode == "score":
            m["note"] = "B7 has no closed answer set: its boxes are always generated"
        m["throughput"] = throughput(recs, state.num_processes, opts.batch_size)
        box = box_tasks()
        m["provenance"] = {
            "model": model_prov, "preprocessing": profile, "system_prompt": assistant.system_prompt,
            "prompt": bench.prompt if bench.kind != "boxes" else {c: box[c].prompt for c in bench.labels},
            "catalogue_task": bench.task.name if bench.task else {c: box[c].name for c in bench.labels},
            "data": opts.data, "origin": ds.origin, "data_notes": ds.notes, "seed": opts.seed,
            "shots": len(shots), "shot_ids": [s.id for s in shots], "limit": opts.limit,
            "max_new_tokens": opts.max_new_tokens or bench.max_new_tokens,
        }
        shot_ids[code] = [s.id for s in shots]
        metrics[code] = m
    # one merged, ordered predictions file; the per-rank parts are folded into it
    ordered = [records[(code, s.id)] for code, (_, _, samples) in plans.items() for s in samples
               if (code, s.id) in records]
    extra = [r for k, r in records.items() if k[0] not in plans]
    write_predictions(out, ordered + extra)
    write_json(out / METRICS, metrics)
    write_json(out / RUN, _run_info(opts, model_prov, profile, state, started, list(plans), shot_ids,
                                    datetime.now(timezone.utc).isoformat(timespec="seconds")))
    return metrics


def _run_info(opts, model_prov, profile, state, started, tasks, shot_ids, finished) -> dict:
    return {"name": opts.name or _default_name(opts), "options": asdict(opts), "tasks": tasks,
            "model": model_prov, "preprocessing": profile, "processes": state.num_processes,
            "shot_ids": shot_ids, "versions": versions(), "argv": sys.argv, "started": started,
            "finished": finished}


def _default_name(opts: RunOptions) -> str:
    base = Path(str(opts.model).rstrip("/")).name or str(opts.model)
    if opts.adapter:
        base += "+" + Path(str(opts.adapter).rstrip("/")).name
    return f"{base} {opts.mode}" + (f" {opts.shots}-shot" if opts.shots else "")


def summary_lines(metrics: dict) -> list[str]:
    """One line per task: n, unparsed, accuracy, macro F1 and its interval."""
    lines = []
    for code, m in metrics.items():
        ci = m.get("macro_f1_ci")
        ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"{code}: n={m['n']} unparsed={m['unparsed']} accuracy={m.get('accuracy', 0):.3f} "
                     f"macro F1={m.get('macro_f1', 0):.3f}{ci_text} ({m.get('mode')})")
    return lines

