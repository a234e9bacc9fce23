"""The ``radiollava`` command. Heavy imports happen inside the subcommands, so ``--help`` is fast."""

from __future__ import annotations

import argparse
import json
import sys

from .cli_args import add_model_args, add_region_args, check_output_args, cutout_from_args, model_spec  # noqa: F401
from .core.errors import RadioLlavaError


def _write_outputs(args, boxes, wcs) -> list[str]:
    from .core.skyregions import write_catalogue, write_regions

    written = []
    if getattr(args, "regions_out", None):
        written.append(str(write_regions(args.regions_out, boxes, wcs)))
    if getattr(args, "catalogue_out", None):
        written.append(str(write_catalogue(args.catalogue_out, boxes)))
    return written


# ---------------------------------------------------------------------------- commands
def cmd_ask(args) -> int:
    import time

    from .core.assistant import Assistant

    if not args.task and not args.question:
        raise RadioLlavaError("give --task NAME or --question TEXT (`radiollava tasks` lists the tasks)")
    if args.task:
        from .core.tasks import get_task

        get_task(args.task)  # an unknown task fails before the model loads
    check_output_args(args, {"--regions-out": args.regions_out, "--catalogue-out": args.catalogue_out})
    from .core.models import quiet_transformers

    quiet_transformers()
    cutout = cutout_from_args(args)
    assistant = Assistant(model_spec(args))
    t0 = time.perf_counter()
    view = assistant.view(cutout)
    render_s = time.perf_counter() - t0
    stream = None if args.json else (lambda s: print(s, end="", flush=True))
    answer = assistant.ask(view, question=args.question, task=args.task, max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, on_text=stream)
    answer.timings.update(load_s=round(assistant.loaded.load_s, 4), render_s=round(render_s, 4))
    written = _write_outputs(args, answer.boxes, cutout.image.wcs)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=None))
        return 0
    print()
    if answer.parsed.kind == "boxes" or answer.boxes:
        print(f"{len(answer.boxes)} box{'es' if len(answer.boxes) != 1 else ''}")
    for b in answer.boxes:
        print(f"  {b.label or 'box'}: {b.where(5)}  {b.width_arcsec:.1f}\" x "
              f"{b.height_arcsec:.1f}\"  pixels {[round(v, 1) for v in b.pixel_box]}")
    for w in answer.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for path in written:
        print(f"wrote {path} ({len(answer.boxes)} boxes)")
    return 0


def cmd_regions(args) -> int:
    from .core.parsing import parse_boxes
    from .core.profiles import get_profile, render
    from .core.skyregions import map_boxes

    check_output_args(args, {"--out": args.regions_out, "--catalogue-out": args.catalogue_out})
    cutout = cutout_from_args(args)
    view = render(cutout, get_profile(args.profile))
    parsed = parse_boxes(args.boxes, args.convention, picture_size=view.picture.size, label=args.label)
    if parsed.unparsed:
        raise RadioLlavaError(f"--boxes {args.boxes!r}: {parsed.problem}; write e.g. \"[0.5, 0.5, 0.1, 0.1]\"")
    boxes, warnings = map_boxes(parsed.boxes, view.transform)
    warnings = list(view.warnings) + warnings
    written = _write_outputs(args, boxes, cutout.image.wcs)
    if args.json:
        print(json.dumps({"boxes": [b.to_dict() for b in boxes], "warnings": warnings,
                          "preprocessing": view.profile.to_dict(), "written": written}))
        return 0
    for b in boxes:
        print(f"{b.label or 'box'}: {b.where(6)}  {b.width_arcsec:.2f}\" x {b.height_arcsec:.2f}\"")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_tasks(args) -> int:
    from .core.tasks import load_tasks

    tasks = load_tasks()
    if args.json:
        print(json.dumps([{"name": t.name, "title": t.title, "kind": t.kind, "labels": list(t.labels),
                           "benchmark": t.benchmark, "prompt": t.prompt} for t in tasks.values()], indent=1))
        return 0
    width = max(len(n) for n in tasks)
    for t in tasks.values():
        labels = f"  [{', '.join(t.labels)}]" if t.labels and t.kind != "yesno" else ""
        print(f"{t.name:<{width}}  {t.kind:<6}  {t.title}{labels}")
    return 0


def cmd_model_tiny(args) -> int:
    from .core.models import FAMILIES, quiet_transformers
    from .core.tiny import build_tiny_family

    quiet_transformers()
    folder = build_tiny_family(args.folder, family=args.family, seed=args.seed)
    print(f"wrote a tiny random {FAMILIES[args.family].title} to {folder} (use --model {folder})")
    return 0


def cmd_model_info(args) -> int:
    from .core.models import ModelSpec, format_model_info, model_info, quiet_transformers

    quiet_transformers()
    info = model_info(ModelSpec(args.spec, adapter=args.adapter, trust_remote_code=args.trust_remote_code))
    print(json.dumps(info) if args.json else format_model_info(info))
    return 0


def cmd_model_convert(args: argparse.Namespace) -> int:
    """``radiollava model convert SRC DST``: print the summary and notes; errors are RadioLlavaError."""
    from .core.convert import convert
    from .core.models import quiet_transformers

    quiet_transformers()
    result = convert(args.src, args.dst, vision_config=args.vision_config, dtype=args.dtype,
                     progress=not args.quiet, allow_download=args.allow_download)
    print(result.summary())
    for note in result.notes:
        print(f"  note: {note}")
    if result.kind == "model":
        print(f"load it with --model {result.dst}")
    else:
        print(f"load it with --adapter {result.dst} on the converted base model")
    return 0


def cmd_demo(args) -> int:
    from .qt.demo import run_demo

    files = args.files
    if not files:  # a simulated sample mosaic (the simulator lives in training/)
        try:
            from training.simulate import sample_mosaic
        except ImportError:
            raise RadioLlavaError("no FITS file given and the simulator is not installed; "
                                  "pass a FITS file: radiollava demo IMAGE.fits") from None
        files = [str(sample_mosaic())]
        print(f"opening the simulated sample mosaic {files[0]}")
    return run_demo(files, model=args.model, screenshot=args.screenshot, quit=args.quit, task=args.task)


# ---------------------------------------------------------------------------- parser
def add_convert_parser(model_subparsers) -> argparse.ArgumentParser:
    """Add ``convert`` to the ``radiollava model`` subcommands; returns the new parser."""
    from .core.convert import DTYPES

    p = model_subparsers.add_parser(
        "convert", help="convert a LLaVA-NeXT-format LLaVA-OneVision checkpoint or LoRA adapter",
        description="Convert a checkpoint trained with the LLaVA-NeXT code (config.json with "
                    "mm_vision_tower; safetensors or .bin shards) or its LoRA adapter into the transformers "
                    "layout, with processor, chat template and the radio-llava preprocessing profile.")
    p.add_argument("src", help="LLaVA-NeXT checkpoint folder, or LoRA adapter folder (adapter_config.json)")
    p.add_argument("dst", help="new folder to write (must not exist)")
    p.add_argument("--vision-config", metavar="DIR_OR_JSON", default=None,
                   help="the vision tower's folder or config.json (default: the hub id in mm_vision_tower, "
                        "from the local hub cache)")
    p.add_argument("--allow-download", action="store_true",
                   help="when the vision tower's config is not in the local hub cache, download its "
                        "config.json and preprocessor_config.json from the hub (off by default)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="store the weights in this dtype (default: as stored in SRC)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_model_convert)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radiollava", description=(
        "Ask a local vision-language model (radio-llava) about regions of radio FITS images."))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ask", help="ask a question about a region of a FITS image")
    add_region_args(p)
    q = p.add_mutually_exclusive_group()
    q.add_argument("--task", help="a task from the catalogue (see `radiollava tasks`)")
    q.add_argument("--question", help="a free question")
    add_model_args(p)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy decoding")
    p.add_argument("--regions-out", help="write the boxes as sky regions (.reg DS9, .crtf, .fits)")
    p.add_argument("--catalogue-out", help="write the boxes as a table (.ecsv, .csv, .fits)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("regions", help="turn model-convention boxes into sky regions for a cutout")
    add_region_args(p)
    p.add_argument("--boxes", required=True, help='e.g. "[0.45, 0.32, 0.05, 0.04], [0.7, 0.1, 0.12, 0.2]"')
    p.add_argument("--convention", default="yolo",
                   choices=["yolo", "qwen", "pixels", "xyxy-1000", "florence-loc", "paligemma-loc"],
                   help="how --boxes is written (see the README's model families; resized-pixels needs the "
                        "model's processor: use `ask`)")
    p.add_argument("--label", help="class label for the boxes")
    p.add_argument("--profile", default="radio-llava", help="preprocessing profile the boxes refer to")
    p.add_argument("--out", dest="regions_out", help="region file (.reg, .crtf, .fits)")
    p.add_argument("--catalogue-out", help="table (.ecsv, .csv, .fits)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_regions)

    p = sub.add_parser("demo", help="start glue with the plugin, FITS files and the assistant panel")
    p.add_argument("files", nargs="*", help="FITS images (default: a simulated sample mosaic)")
    p.add_argument("--model", help="model for the panel (default: the preference, normally nano)")
    p.add_argument("--task", default="boxes-compact", help="the preset task of the scripted flow")
    p.add_argument("--screenshot", help="run the scripted flow (region → task → boxes) and save a PNG "
                   "of the window; without a screen (offscreen) it then exits")
    p.add_argument("--quit", action="store_true", help="exit when done (with --screenshot: after it)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tasks", help="list the task catalogue")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("model", help="model utilities")
    msub = p.add_subparsers(dest="model_command", required=True)
    t = msub.add_parser("tiny", help="build a tiny random model offline (tests, install checks)")
    t.add_argument("folder")
    from .core.models import ModelSpec
    from .core.tiny import TINY_FAMILIES

    t.add_argument("--family", default="llava_onevision", choices=TINY_FAMILIES,
                   help="model family (default: llava_onevision)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_model_tiny)
    t = msub.add_parser("info", help="family, box convention, picture size, parameters, dtype, profile of a model")
    t.add_argument("spec", help="nano, a model folder, or a hub id")
    t.add_argument("--adapter", help="a LoRA adapter folder (its preprocessing profile wins)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    ModelSpec.add_trust_remote_code(t)
    t.set_defaults(func=cmd_model_info)
    add_convert_parser(msub)  # `radiollava model convert SRC DST [--vision-config] [--dtype]`

    from .cli_survey import add_subcommands as add_survey

    add_survey(sub)  # `radiollava scan` and `radiollava similar`

    # training/ and benchmarks/ add their own subcommands (cli → all; they never import each other)
    for module in ("training.cli", "benchmarks.cli"):
        try:
            add = __import__(module, fromlist=["add_subcommands"]).add_subcommands
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        add(sub)
    return parser


def check_common_args(args) -> None:
    """Values many subcommands share, checked before any work (one line naming the value)."""
    import math
    import re

    def number(name):
        value = getattr(args, name, None)
        return None if value is None or isinstance(value, bool) else value

    for name in ("max_new_tokens", "batch_size", "top", "tile", "limit"):
        value = number(name)
        if isinstance(value, int) and value < 1:
            flag = "--" + name.replace("_", "-")
            raise RadioLlavaError(f"{flag} {value}: give a whole number of at least 1")
    temperature = number("temperature")
    if temperature is not None and not (math.isfinite(temperature) and 0 <= temperature <= 5):
        raise RadioLlavaError(f"--temperature {temperature}: give a number from 0 (greedy) to 5")
    box = getattr(args, "box", None)
    if box is not None and not all(math.isfinite(v) for v in box):
        raise RadioLlavaError(f"--box {' '.join(map(str, box))}: every corner must be a finite pixel number")
    device = getattr(args, "device", None)
    if isinstance(device, str) and not re.fullmatch(r"cpu|mps|cuda(:\d+)?|xpu(:\d+)?", device):
        raise RadioLlavaError(f"--device {device}: use cpu, cuda, cuda:N or mps")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_common_args(args)
        return args.func(args)
    except RadioLlavaError as exc:
        print(f"radiollava: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("radiollava: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
