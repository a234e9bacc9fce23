"""``radiollava simulate``, ``dataset build|captions|stats``, ``train`` and ``merge`` (registered by the
main CLI)."""

from __future__ import annotations

import argparse
import json

from glue_radiollava.core.errors import RadioLlavaError


# Literal copies (the CLI must not import numpy to build its parser); checked against the modules in tests.
SCENES = ("field", "source", "galaxy", "mixed")
SURVEYS = ("lotss", "first", "emu")
KINDS = ("sim", "labels", "yolo", "rgcat", "mosaic")


def cmd_simulate(args) -> int:
    from .simulate import config_for, write_simulation

    if args.workers < 1:
        raise RadioLlavaError(f"--workers {args.workers}: use 1 or more")
    cfg = config_for(args.size, args.scene, args.survey, args.mosaic)
    summary = write_simulation(args.out, args.n, args.seed, cfg, workers=args.workers, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(summary))
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in summary["labels"].items() if v)
    print(f"wrote {summary['images']} {'mosaics' if args.mosaic else 'images'} with {summary['objects']} "
          f"objects to {summary['folder']} ({', '.join(summary['files'])})")
    print(f"labels: {counts}")
    return 0


def cmd_build(args) -> int:
    from .datasets import BuildOptions, build_dataset

    kind, source = args.source
    if kind not in KINDS:
        raise RadioLlavaError(f"--from {kind}: unknown input kind; use one of {', '.join(KINDS)}")
    opts = BuildOptions(kind=kind, input=source, out=args.out, catalogue=args.catalogue, profile=args.profile,
                        split=args.split, seed=args.seed, on_error=args.on_error, phrasing=args.phrasing,
                        scheme=args.scheme, classes=args.classes, cutout_size=args.cutout_size,
                        overlap=args.overlap, box_classes=args.box_classes, box_scale=args.box_scale,
                        extended_beams=args.extended_beams,
                        augment=args.augment, augment_turns=args.augment_turns, temperature=args.temperature,
                        limit=args.limit, overwrite=args.overwrite)
    if args.augment:
        from glue_radiollava.core.models import quiet_transformers

        quiet_transformers()
    report = build_dataset(opts)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['images']} images, {report['turns']} question/answer turns, {report['skipped']} skipped"
          + (f" ({', '.join(f'{k}: {v}' for k, v in report['skipped_by_reason'].items())})"
             if report["skipped"] else ""))
    if report["splits"]:
        print("splits: " + ", ".join(f"{k} {v}" for k, v in report["splits"].items()))
    if report["augmented"]:
        a = report["augmented"]
        print(f"VLM-augmented: {a['ok']} images; {a['failed']} kept only their templated turns")
    print("wrote " + ", ".join(report["files"]) + f", pictures in {report['pictures']}, {report['meta']}")
    return 0


def cmd_captions(args) -> int:
    from .captions import Selection, filter_captions

    from glue_radiollava.core.models import quiet_transformers


    quiet_transformers()
    sel = Selection(args.min_words, args.min_score, args.allow_multiplot, args.allow_corrupted,
                    args.require_astromap)
    report = filter_captions(args.input, args.out, args.judge, sel, on_error=args.on_error, seed=args.seed)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['records']} records: {report['scored']} scored, {report['selected']} selected, "
          f"{report['skipped']} skipped; wrote {', '.join(report['files'])}")
    return 0


def cmd_stats(args) -> int:
    from .llava_format import dataset_stats, format_stats

    stats = dataset_stats(args.files, tokenizer=args.tokenizer)
    print(json.dumps(stats) if args.json else format_stats(stats))
    return 0


def cmd_train(args) -> int:
    if args.overrides and args.overrides[0] == "recipe":
        from .recipes import run_recipe_cli

        return run_recipe_cli(args.overrides[1:])
    from .finetune import load_config, train

    if "--config" in args.overrides:          # `train a=b --config FILE`: the option after the options
        i = args.overrides.index("--config")
        if i + 1 >= len(args.overrides):
            raise RadioLlavaError("--config needs a file name")
        args.config = args.overrides[i + 1]
        args.overrides = args.overrides[:i] + args.overrides[i + 2:]
    if not args.config and not args.overrides:
        raise RadioLlavaError("give --config FILE.yaml and/or key=value options "
                              "(e.g. base=nano data=train.json method=lora out=runs/lora)")
    config = load_config(args.config, args.overrides)
    out = train(config)
    print(f"wrote {out} (loss log {out / 'loss.csv'}, plot {out / 'loss.png'}); "
          f"ask it with: radiollava ask IMAGE ... --model {out}")
    return 0


def cmd_merge_adapter(args) -> int:
    from .merge import merge_adapter

    from glue_radiollava.core.models import quiet_transformers


    quiet_transformers()
    out = merge_adapter(args.adapter, args.out, base=args.base)
    print(f"wrote {out}: the adapter merged into its base")
    return 0


def cmd_merge_weighted(args) -> int:
    from .merge import merge_weighted

    out = merge_weighted(args.base, args.finetuned, args.alpha, args.out)
    print(f"wrote {out}: LLM and projector = {1 - args.alpha:g} · base + {args.alpha:g} · fine-tuned")
    return 0


def add_subcommands(sub) -> None:
    """Add ``simulate``, ``dataset``, ``train`` and ``merge`` to the ``radiollava`` subparsers."""
    t = sub.add_parser("train", help="fine-tune (full, lora, qlora) on LLaVA conversations; "
                       "`train recipe nano --out DIR` trains the embedded model",
                       description="radiollava train --config FILE.yaml [key=value ...]  |  "
                                   "radiollava train recipe nano --out DIR [--quick] [--seed S]")
    t.add_argument("--config", help="YAML file of options (see resources/configs/finetune-lora.yaml)")
    t.add_argument("overrides", nargs=argparse.REMAINDER,
                   help="key=value options overriding the config (e.g. method=full)")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("merge", help="merge an adapter into its base, or a fine-tuned model with its base")
    msub = m.add_subparsers(dest="merge_command", required=True)
    a = msub.add_parser("adapter", help="fold a LoRA adapter into its base: a plain model folder")
    a.add_argument("--adapter", required=True, help="LoRA adapter folder (a lora/qlora run's output)")
    a.add_argument("--base", help="base model (default: the one named in adapter_config.json)")
    a.add_argument("--out", required=True)
    a.set_defaults(func=cmd_merge_adapter)
    w = msub.add_parser("weighted", help="(1-alpha)·base + alpha·fine-tuned for LLM and projector")
    w.add_argument("--base", required=True, help="the base model (nano, a folder, a hub id)")
    w.add_argument("--finetuned", required=True, help="the fine-tuned model folder (full or merged)")
    w.add_argument("--alpha", type=float, required=True, help="0 = base, 1 = fine-tuned")
    w.add_argument("--out", required=True)
    w.set_defaults(func=cmd_merge_weighted)

    p = sub.add_parser("simulate", help="simulate radio cutouts or mosaics (FITS) with exact ground truth")
    p.add_argument("--out", required=True, help="output folder (images/, labels.json, objects.json …)")
    p.add_argument("--n", type=int, default=100, help="number of images (default 100)")
    p.add_argument("--seed", type=int, default=0, help="series seed: same seed, same bytes")
    p.add_argument("--size", type=int, help="pixels per side (default 128; 1024 with --mosaic)")
    p.add_argument("--mosaic", action="store_true", help="whole mosaics with an ECSV source catalogue each")
    p.add_argument("--scene", choices=SCENES, default="field",
                   help="field: survey cutouts (multi-label); source: one rgz-smorph source; "
                        "galaxy: one FR-I/FR-II; mixed")
    p.add_argument("--survey", choices=SURVEYS, default="lotss", help="pixel size, beam and noise preset")
    p.add_argument("--workers", type=int, default=1, help="processes (the output does not depend on it)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier simulation in --out")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_simulate)

    d = sub.add_parser("dataset", help="build, filter and inspect LLaVA conversation datasets")
    dsub = d.add_subparsers(dest="dataset_command", required=True)
    b = dsub.add_parser("build", help="annotated images → LLaVA conversation JSON + rendered PNG pictures")
    b.add_argument("--from", dest="source", nargs=2, metavar=("KIND", "INPUT"), required=True,
                   help=f"input kind ({', '.join(KINDS)}) and its file or folder")
    b.add_argument("--out", required=True, help="output .json (pictures go to OUT_images/)")
    b.add_argument("--catalogue", help="mosaic: source catalogue (CSV/ECSV/FITS with RA/Dec and sizes)")
    b.add_argument("--profile", default="radio-llava", help="preprocessing profile of the pictures")
    b.add_argument("--split", help="train/val/test fractions, e.g. 0.8,0.1,0.1 (no image in two splits)")
    b.add_argument("--seed", type=int, default=0, help="seed of question order, phrasing and splits")
    b.add_argument("--on-error", choices=["skip", "stop"], default="skip",
                   help="bad record: skip it (default, counted) or stop with its message")
    b.add_argument("--phrasing", choices=["catalogue", "mixed"], default="catalogue",
                   help="catalogue prompts only (default) or also paraphrases")
    b.add_argument("--scheme", default="auto", help="labels: auto, multilabel, smorph, fr or peculiarity")
    b.add_argument("--classes", help="yolo: class names in id order, comma-separated")
    b.add_argument("--cutout-size", type=int, default=128, help="mosaic: tile size in pixels (default 128)")
    b.add_argument("--overlap", type=int, default=0, help="mosaic: tile overlap in pixels (default 0)")
    b.add_argument("--box-classes", help="mosaic: classes the catalogue lists completely (comma-separated)")
    b.add_argument("--box-scale", type=float, default=1.5,
                   help="mosaic: box size in FWHM when the catalogue has no Peak_flux/Isl_rms (default 1.5)")
    b.add_argument("--extended-beams", type=float, default=2.0,
                   help="mosaic without a class column: EXTENDED above this deconvolved size in beams (2)")
    b.add_argument("--augment", metavar="MODEL",
                   help="add VLM-generated Q&A with this model (nano, a folder or a hub id)")
    b.add_argument("--augment-turns", type=int, default=3, help="generated pairs per image (default 3)")
    b.add_argument("--temperature", type=float, default=0.5, help="sampling temperature of --augment (0.5)")
    b.add_argument("--limit", type=int, help="stop after this many images")
    b.add_argument("--overwrite", action="store_true", help="replace an earlier build at --out")
    b.add_argument("--json", action="store_true", help="print the report as one JSON object")
    b.set_defaults(func=cmd_build)

    c = dsub.add_parser("captions", help="score figure captions with a judge model and keep the good ones")
    c.add_argument("input", help="JSON list or JSON lines of {\"image\", \"caption\"[, \"id\"]}")
    c.add_argument("--judge", required=True, help="judge model: nano, a model folder or a hub id")
    c.add_argument("--out", required=True, help="selected records as LLaVA JSON (scores in OUT.scores.json)")
    c.add_argument("--min-words", type=int, default=5, help="keep n_words > this (default 5)")
    c.add_argument("--min-score", type=int, default=7, help="keep caption_score > this (default 7)")
    c.add_argument("--allow-multiplot", action="store_true", help="keep figures with several panels")
    c.add_argument("--allow-corrupted", action="store_true", help="keep captions judged corrupted")
    c.add_argument("--require-astromap", action="store_true", help="keep only sky maps")
    c.add_argument("--on-error", choices=["skip", "stop"], default="skip")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_captions)

    s = dsub.add_parser("stats", help="images, turns, labels, boxes and tokens of LLaVA JSON files")
    s.add_argument("files", nargs="+", help="LLaVA JSON files")
    s.add_argument("--tokenizer", help="count tokens with this model folder's tokenizer")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stats)
