"""The paper's smallest model on this CPU: a full-depth random LLaVA-OneVision 0.5B, beside nano.

    python benchmarks/perf/real_config.py [--regions 64,512] [--dtypes fp32,bf16,4bit]
                                          [--max-new-tokens 16] [--out DIR] [--layers N] [--narrow]

Builds LLaVA-OneVision 0.5B from its published configuration (tests/fixtures/llava_onevision_0.5b.json:
Qwen2-0.5B language model, SigLIP so400m-patch14-384 vision tower, anyres_max_9 with its 36
image_grid_pinpoints, vocabulary of 152 000) with RANDOM weights (shapes and dtypes as released:
float16 safetensors, tied LM head), saved in a temporary folder in the Hugging Face layout
(config.json, model.safetensors, processor and tokenizer files, preprocessing.json). The tokenizer
is the project's small offline one (``core.tiny.build_tokenizer``, 600 tokens; the model keeps the
config's 152 000 rows, ids past the tokenizer decode to nothing). Then, in a fresh process per
model and dtype, it measures the folder through the core as a user's real weights would be:
``load_model`` time, peak resident memory (``ru_maxrss``: includes the memory-mapped weight pages),
and for each region of a synthetic radio mosaic, rendered with the model's own profile and asked
with ``Assistant.ask`` (greedy, exactly ``--max-new-tokens`` tokens: EOS is held off, random weights
would stop anywhere): prefill seconds (from the question to the first new token, less the
processor's own ``prepare_s``: generate's set-up, the vision tower and projector (``vision_s``),
the prompt through the LLM (``llm_prefill_s``)) and decode tokens/s (the rest of ``generate``). The embedded ``nano`` is measured
the same way beside it. 4-bit (bitsandbytes nf4; the vision tower, projector and LM head stay in
full precision) is attempted; where it cannot run the output says why instead of failing.

Figures are of one question each, after ``--warmup`` uncounted questions (default 1, on a 16 px
region) so that one-time set-up (kernels, chat template) is not charged to the first region.
The last line printed is a JSON object with every figure (``cases``: one per model × dtype ×
region) and the ratios (``ratios``). ``--layers N`` / ``--narrow`` build a reduced model (N layers
in each tower; widths cut as tests/test_real_configs.py cuts them) for a quick check of the script.
The temporary model folder is removed at the end (``--keep-model DIR`` builds it at DIR, or reuses
the one an earlier run left there, and keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "llava_onevision_0.5b.json"
QUESTION_TASK = "b3-radio-galaxy"      # the paper's B3 prompt, as benchmarks/perf/nano.py asks it


# ------------------------------------------------------------------ building the model folder
def _section(section: dict, **override) -> dict:
    out = {k: v for k, v in section.items() if k not in ("architectures", "torch_dtype")}
    out.update(override)
    return out


def build_real(folder: Path, layers: int | None = None, narrow: bool = False, seed: int = 0) -> dict:
    """Write the random full-size (or reduced) LLaVA-OneVision 0.5B folder; returns what was built."""
    import torch
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from glue_radiollava.core.profiles import get_profile, save_profile
    from glue_radiollava.core.tiny import build_tokenizer, llava_onevision_processor

    t0 = time.perf_counter()
    real = json.loads(FIXTURE.read_text())
    tokenizer = build_tokenizer()
    vision, text = dict(real["vision_config"]), dict(real["text_config"])
    if narrow:      # as tests/test_real_configs.py: widths cut, the vision geometry kept
        vision.update(hidden_size=32, intermediate_size=64, num_attention_heads=2)
        text.update(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                    vocab_size=len(tokenizer))
    if layers:
        vision["num_hidden_layers"] = text["num_hidden_layers"] = int(layers)
    text.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    keep = {k: v for k, v in real.items() if not k.startswith("_")
            and k not in ("vision_config", "text_config", "architectures", "torch_dtype")}
    keep.update(image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                video_token_index=tokenizer.convert_tokens_to_ids("<video>"))
    config = LlavaOnevisionConfig(vision_config=_section(vision), text_config=_section(text), **keep)
    config.eos_token_id, config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    config.dtype = torch.float16                     # as released (llava-hf: "torch_dtype": "float16")

    # No initialisation pass: build on the meta device, allocate, fill. Values do not matter, only
    # shapes and dtypes; norms start at 1 so activations stay finite in fp16/bf16.
    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(config)
    model = model.to(torch.float16).to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
        model.tie_weights()
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    del model

    p = real["_processor"]
    processor = llava_onevision_processor(tokenizer, p)
    processor.save_pretrained(folder)
    save_profile(get_profile("radio-llava"), folder)   # the paper's checkpoints are asked with radio-llava
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return {"folder": str(folder), "parameters": int(params), "folder_mib": round(size / 2**20, 1),
            "build_s": round(time.perf_counter() - t0, 2), "vision_layers": vision["num_hidden_layers"],
            "text_layers": text["num_hidden_layers"], "vision_hidden": vision["hidden_size"],
            "text_hidden": text["hidden_size"], "vocab_size": text["vocab_size"], "tokenizer_size": len(tokenizer),
            "narrow": bool(narrow)}


# ------------------------------------------------------------------ one model × dtype, in its own process
MOSAIC_SIDE = 1024


def _mosaic(side: int = MOSAIC_SIDE):
    """A synthetic radio mosaic: noise, compact sources and a double-lobed source, with a SIN WCS."""
    import numpy as np
    from astropy.io import fits

    from glue_radiollava.core.image import RadioImage

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    data = rng.normal(0, 1e-4, (side, side)).astype(np.float32)
    for _ in range(60):
        cx, cy, flux = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(5e-4, 5e-3)
        data += flux * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8.0)
    for cx in (side / 2 - 40, side / 2 + 40):
        data += 2e-3 * np.exp(-((x - cx) ** 2 / 200.0 + (y - side / 2) ** 2 / 60.0))
    header = fits.Header({"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL1": 205.0, "CRVAL2": 55.0,
                          "CRPIX1": side / 2 + 0.5, "CRPIX2": side / 2 + 0.5, "CDELT1": -1.5 / 3600,
                          "CDELT2": 1.5 / 3600, "BMAJ": 6 / 3600, "BMIN": 6 / 3600, "BPA": 0.0})
    return RadioImage.from_array(data, header)


def _rss_mib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def _peak_mib() -> float:
    """This process's peak resident memory: VmHWM on Linux (``ru_maxrss`` would carry the parent's
    peak across fork + exec), else ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def worker(case: dict) -> dict:
    """Load ``case['model']`` at ``case['dtype']`` and ask about each region; every figure in a dict."""
    import torch  # imports are paid once per session, not per model load
    import transformers.modeling_utils
    import transformers.processing_utils  # noqa: F401
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer  # noqa: F401

    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import ModelSpec, load_model, quiet_transformers

    quiet_transformers()
    dtype = case["dtype"]
    spec = ModelSpec(case["model"], dtype="fp32" if dtype == "4bit" else dtype, device="cpu",
                     quantize="4bit" if dtype == "4bit" else None)
    out = {"model": case["label"], "dtype": dtype, "threads": torch.get_num_threads()}
    image = _mosaic()
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    loaded = load_model(spec)
    out["load_s"] = round(time.perf_counter() - t0, 3)
    out["rss_after_load_mib"] = round(_rss_mib() - rss0, 1)
    out["peak_rss_after_load_mib"] = round(_peak_mib(), 1)
    model = loaded.model
    n = int(case["max_new_tokens"])
    model.generation_config.min_new_tokens = n       # exactly n tokens: no early EOS
    # Timed from inside generate (transformers 5 runs the vision tower BEFORE the first forward of
    # the model, in its multimodal-encoding step): the vision tower's forwards, and each forward of the
    # whole model (the first is the prompt through the LLM, every later one decodes a token).
    marks: list[list[float]] = []
    vision: list[list[float]] = []
    prompt = []

    def before(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if not marks and ids is not None:
            prompt.append(int(ids.shape[-1]))
        marks.append([time.perf_counter(), float("nan")])

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(lambda *_: marks[-1].__setitem__(1, time.perf_counter()))
    tower = getattr(getattr(model, "model", model), "vision_tower", None)
    if tower is not None:
        tower.register_forward_pre_hook(lambda *_: vision.append([time.perf_counter(), float("nan")]))
        tower.register_forward_hook(lambda *_: vision[-1].__setitem__(1, time.perf_counter()))
    assistant = Assistant(loaded)
    for _ in range(int(case.get("warmup", 1))):   # one-time set-up (kernels, templates), not counted
        warm = image.cutout_pixels(0, 0, 16, 16)
        assistant.ask(assistant.view(warm), task=QUESTION_TASK, max_new_tokens=2)
    out["peak_rss_after_warmup_mib"] = round(_peak_mib(), 1)
    regions = []
    for size in case["regions"]:
        x0 = max(0, MOSAIC_SIDE // 2 - size // 2)
        view = assistant.view(image.cutout_pixels(x0, x0, x0 + size, x0 + size))
        marks.clear()
        vision.clear()
        prompt.clear()
        t0 = time.perf_counter()
        answer = assistant.ask(view, task=QUESTION_TASK, max_new_tokens=n)
        t_end = time.perf_counter()
        new = answer.timings["new_tokens"]
        first_token = marks[0][1] - t0                 # the question to the first new token
        prefill = first_token - answer.timings["prepare_s"]   # less the processor (tiling, tokenising)
        decode_s = marks[-1][1] - marks[0][1]          # forwards 2..n and generate's own work between them
        regions.append({"region_px": size, "picture": list(view.picture.size),
                        "prompt_tokens": prompt[0] if prompt else None,
                        "prepare_s": answer.timings["prepare_s"], "prefill_s": round(prefill, 3),
                        "vision_s": round(sum(b - a for a, b in vision), 3) if vision else None,
                        "llm_prefill_s": round(marks[0][1] - marks[0][0], 3),
                        "first_token_s": round(first_token, 3),
                        "decode_tok_s": round((new - 1) / decode_s, 2) if new > 1 and decode_s > 0 else None,
                        "new_tokens": new, "forwards": len(marks), "answer_s": round(t_end - t0, 3),
                        "peak_rss_mib": round(_peak_mib(), 1)})
    out["regions"] = regions
    return out


def _run_case(case: dict, timeout: float | None, role: str = "--worker") -> dict:
    """Run ``worker`` (or the build) in a fresh process (its own peak memory; this one stays small);
    a failure becomes ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), role, json.dumps(case)]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = dict(os.environ, PYTHONPATH=path, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"model": case.get("label"), "dtype": case.get("dtype"), "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    err = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
    why = err[-1] if err else f"exit status {proc.returncode}"
    return {"model": case.get("label"), "dtype": case.get("dtype"), "error": why[:300]}


# ------------------------------------------------------------------ the report
def _flat(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        if "error" in r:
            rows.append({"model": r["model"], "dtype": r["dtype"], "error": r["error"]})
            continue
        for g in r["regions"]:
            rows.append({"model": r["model"], "dtype": r["dtype"], "load_s": r["load_s"],
                         "rss_after_load_mib": r["rss_after_load_mib"], **g})
    return rows


def _ratio(a, b):
    ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
    return float(f"{a / b:.3g}") if ok else None


def ratios(rows: list[dict], real: str) -> dict:
    """0.5B over nano (same dtype and region), and each dtype over fp32 for the 0.5B."""
    ok = {(r["model"], r["dtype"], r["region_px"]): r for r in rows if "error" not in r}
    out = {}
    for (model, dtype, size), r in ok.items():
        if model != real:
            continue
        nano = ok.get(("nano", dtype, size))
        if nano:
            out[f"{dtype}/{size}px 0.5B vs nano"] = {
                "prefill_time_x": _ratio(r["prefill_s"], nano["prefill_s"]),
                "decode_speed_x": _ratio(r["decode_tok_s"], nano["decode_tok_s"]),
                "load_time_x": _ratio(r["load_s"], nano["load_s"]),
                "peak_rss_x": _ratio(r["peak_rss_mib"], nano["peak_rss_mib"])}
        base = ok.get((model, "fp32", size))
        if base and dtype != "fp32":
            out[f"{dtype}/{size}px vs fp32/{size}px (0.5B)"] = {
                "prefill_time_x": _ratio(r["prefill_s"], base["prefill_s"]),
                "decode_speed_x": _ratio(r["decode_tok_s"], base["decode_tok_s"]),
                "peak_rss_x": _ratio(r["peak_rss_mib"], base["peak_rss_mib"])}
    return out


def print_table(rows: list[dict]) -> None:
    head = ("model", "dtype", "region", "tokens", "load s", "peak MiB", "prefill s", "(vision s)", "decode tok/s",
            "new")
    print(("{:<10} {:<5} {:>7} {:>7} {:>7} {:>9} {:>10} {:>10} {:>13} {:>4}").format(*head))
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<10} {r['dtype']:<5}   not measured: {r['error']}")
            continue
        vision = f"{r['vision_s']:.2f}" if r.get("vision_s") is not None else "-"
        print(("{:<10} {:<5} {:>5}px {:>7} {:>7.2f} {:>9.0f} {:>10.2f} {:>10} {:>13} {:>4}").format(
            r["model"], r["dtype"], r["region_px"], r["prompt_tokens"], r["load_s"], r["peak_rss_mib"],
            r["prefill_s"], vision, r["decode_tok_s"] if r["decode_tok_s"] is not None else "-", r["new_tokens"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="64,512", help="region sides in mosaic pixels, comma-separated")
    parser.add_argument("--dtypes", default="fp32,bf16,4bit", help="any of fp32, bf16, fp16, 4bit")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to DIR/real_config.json")
    parser.add_argument("--layers", type=int, default=None, help="layers in each tower (default: the config's)")
    parser.add_argument("--narrow", action="store_true", help="cut the widths too (a quick check of the script)")
    parser.add_argument("--no-nano", action="store_true", help="skip the embedded model")
    parser.add_argument("--keep-model", type=Path, default=None,
                        help="build the model at DIR (or reuse the one already there) and keep it")
    parser.add_argument("--case-timeout", type=float, default=None, help="seconds for each model × dtype")
    parser.add_argument("--warmup", type=int, default=1,
                        help="questions asked first and not counted (a 16 px region; 0: first-question figures)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.build:
        b = json.loads(args.build)
        print(json.dumps(build_real(Path(b["folder"]), layers=b["layers"], narrow=b["narrow"])))
        return 0

    from glue_radiollava.core.models import quiet_transformers

    quiet_transformers()
    regions = [int(s) for s in args.regions.split(",") if s.strip()]
    dtypes = [s.strip() for s in args.dtypes.split(",") if s.strip()]
    bad = [d for d in dtypes if d not in ("fp32", "bf16", "fp16", "4bit")]
    if bad:
        parser.error(f"--dtypes {','.join(bad)}: use fp32, bf16, fp16 or 4bit")
    notes = []

    temp = None
    folder = args.keep_model or Path(temp := tempfile.mkdtemp(prefix="radiollava-ov05b-")) / "model"
    real = "ov-0.5B" if not (args.layers or args.narrow) else "ov-0.5B*"
    try:
        if args.keep_model and (folder / "built.json").is_file():
            built = json.loads((folder / "built.json").read_text())
        else:
            built = _run_case({"folder": str(folder), "layers": args.layers, "narrow": args.narrow}, None, "--build")
            if "error" in built:
                print(f"cannot build the model: {built['error']}", file=sys.stderr)
                return 1
            if args.keep_model:
                (folder / "built.json").write_text(json.dumps(built))
        print(f"built {real}: {built['parameters'] / 1e6:.1f} M parameters, {built['folder_mib']:.0f} MiB "
              f"(float16 safetensors) in {built['build_s']:.1f} s; SigLIP {built['vision_layers']} x "
              f"{built['vision_hidden']}, Qwen2 {built['text_layers']} x {built['text_hidden']}, vocab "
              f"{built['vocab_size']} (tokenizer: the project's offline one, {built['tokenizer_size']} tokens)",
              flush=True)
        results = []
        models = [(real, str(folder))] + ([] if args.no_nano else [("nano", "nano")])
        for dtype in dtypes:
            for label, model in models:
                case = {"label": label, "model": model, "dtype": dtype, "regions": regions,
                        "max_new_tokens": args.max_new_tokens, "warmup": args.warmup}
                t0 = time.perf_counter()
                results.append(_run_case(case, args.case_timeout))
                state = results[-1].get("error", "ok")
                print(f"  {label} {dtype}: {state} ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    rows = _flat(results)
    notes += [f"{r['model']} {r['dtype']} not measured: {r['error']}" for r in results if "error" in r]
    if "4bit" in dtypes:
        notes.append("4bit: bitsandbytes nf4, compute in fp32 (the core's CPU default); vision tower, projector "
                     "and LM head kept in full precision")
    print()
    print_table(rows)
    rat = ratios(rows, real)
    if rat:
        print("\nratios (prefill_time_x, load_time_x, peak_rss_x: A over B; decode_speed_x: tokens/s of A over B)")
        for k, v in rat.items():
            print(f"  {k}: " + ", ".join(f"{a} {b}" for a, b in v.items() if b is not None))
    for note in notes:
        print(note)
    result = {"model": real, "built": {k: v for k, v in built.items() if k != "folder"},
              "model_folder": str(folder), "model_kept": bool(args.keep_model), "warmup": args.warmup,
              "max_new_tokens": args.max_new_tokens, "question_task": QUESTION_TASK, "regions": regions,
              "dtypes": dtypes, "cases": rows, "ratios": rat, "notes": notes,
              "cpu_threads": results[0].get("threads") if results else None}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "real_config.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
