"""``radiollava scan`` and ``radiollava similar``: the assistant at survey scale."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from .core.errors import RadioLlavaError


def _image(args):
    from .core.image import RadioImage

    return RadioImage.open(args.image, hdu=args.hdu, plane=getattr(args, "plane", None))


def _tiles(args, image):
    from .core.scan import plan_tiles, region_bounds

    bounds, keep = (None, None)
    if getattr(args, "region", None):
        bounds, keep = region_bounds(image, args.region)
    return plan_tiles(image.shape, args.tile, args.overlap, bounds), bounds, keep


# ---------------------------------------------------------------------------- scan
def cmd_scan(args) -> int:
    from tqdm import tqdm

    from .cli_args import check_output_args, model_spec
    from .core.assistant import Assistant
    from .core.models import quiet_transformers
    from .core.processes import process_state
    from .core.scan import (AssistantDetector, box_tasks, check_journal, gather_journals, journal_path,
                            result_from_journal, scan, write_outputs)
    from .core.skyregions import REGION_FORMATS, TABLE_FORMATS

    if Path(args.out).suffix.lower() not in TABLE_FORMATS:
        raise RadioLlavaError(f"--out {args.out}: use a table file (.ecsv, .csv or .fits)")
    if args.regions_out and Path(args.regions_out).suffix.lower() not in REGION_FORMATS:
        raise RadioLlavaError(f"--regions-out {args.regions_out}: use .reg (DS9), .crtf or .fits")
    finder = getattr(args, "detector", "model") or "model"
    if finder == "model":
        if not args.task:
            raise RadioLlavaError("--task is needed with the model: give box task(s) such as "
                                  "boxes-compact,boxes-extended (`radiollava tasks`), or choose a --detector")
        tasks = [t.name for t in box_tasks(args.task.split(","))]   # checked before the model loads
    else:
        from .core.finders import make_finder

        if args.task:
            raise RadioLlavaError(f"--task asks the model; the {finder} detector finds COMPACT and EXTENDED "
                                  "sources on its own (drop --task)")
        source_finder = make_finder(finder)           # a missing package says how to install, before any work
        tasks = [finder]
    check_journal(journal_path(args.out), args.resume)        # an earlier scan: --resume, not --overwrite
    check_output_args(args, {"--out": args.out, "--regions-out": args.regions_out},
                      allow_existing=args.resume)                  # --resume rewrites them
    image = _image(args)
    tiles, bounds, keep = _tiles(args, image)
    journal = journal_path(args.out)
    quiet_transformers()
    state = process_state(args.device)
    if finder == "model":
        device = args.device or (str(state.device) if state.num_processes > 1 else None)
        spec = replace(model_spec(args), device=device)
        detector = AssistantDetector(Assistant(spec), tasks, args.max_new_tokens)
    else:
        from .core.finders import FinderDetector, pixel_beam

        detector = FinderDetector(source_finder, pixel_beam(image))
    settings = {"tile": args.tile, "overlap": args.overlap, "region": args.region,
                "hdu": args.hdu, "iou": args.iou}
    bar = tqdm(total=len(tiles), unit="tile", desc="scan", file=sys.stderr,
               disable=args.quiet or not state.is_local_main_process)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    sharded = state.num_processes > 1
    if sharded:                      # every process looks before any of them writes its part
        check_journal(journal, args.resume)
        state.wait_for_everyone()
    interrupted = False
    try:
        result = scan(image, detector, tiles, journal, batch_size=args.batch_size, settings=settings,
                      resume=args.resume or sharded, keep=keep, bounds=bounds,
                      shard=(state.process_index, state.num_processes), iou=args.iou,
                      on_progress=progress)
    except KeyboardInterrupt:        # the journal holds every finished batch
        interrupted = True
    finally:
        bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    gather_journals(journal)
    if interrupted or sharded:       # what every process has written
        result = result_from_journal(journal, tiles, keep, args.iou)
    meta = {"IMAGE": str(args.image), "TASKS": ",".join(tasks), "TILE": args.tile, "OVERLAP": args.overlap,
            "MODEL": detector.describe().get("model", finder),
            "MODELSHA": detector.describe().get("model_sha256") or ""}
    written = write_outputs(result, args.out, args.regions_out, image.wcs, meta)
    status = "complete" if result.complete else "incomplete"
    print(f"{len(result.detections)} sources ({result.found} boxes before merging) from "
          f"{result.tiles_done}/{result.tiles_total} tiles ({result.tiles_blank} blank, skipped); "
          f"scan {status}")
    for path in written:
        print(f"wrote {path}")
    print(f"journal: {journal}")
    if not result.complete:
        print("radiollava: scan stopped; what was found is written; continue with the same command "
              "and --resume", file=sys.stderr)
        return 130 if interrupted else 1
    return 0


def add_scan_parser(sub) -> None:
    from .cli_args import add_model_args

    p = sub.add_parser("scan", help="tile a whole mosaic, ask a box task on every tile, write a catalogue",
                       description="Tile the mosaic (or a region of it), ask box tasks of the model on every "
                       "tile in batches, merge duplicates across overlaps on the sky, and write a source "
                       "catalogue and sky regions. Ctrl-C keeps what is done; --resume continues. Runs "
                       "sharded under `accelerate launch`.")
    p.add_argument("image", help="FITS mosaic with a celestial WCS")
    p.add_argument("--task",
                   help="box task(s) for the model, comma-separated: boxes-compact,boxes-extended "
                        "(`radiollava tasks`); needed with --detector model")
    p.add_argument("--detector", choices=["model", "islands", "photutils", "aegean", "pybdsf"], default="model",
                   help="who finds the boxes on each tile: the model (default), or a classical source finder "
                        "(COMPACT/EXTENDED from its own fit; photutils, aegean and pybdsf need "
                        "pip install 'glue-radiollava[finders]')")
    p.add_argument("--tile", type=int, default=128, help="tile size in pixels (default 128)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap, fraction of a tile (default 0.25)")
    p.add_argument("--region", help="scan only inside this region (DS9/CRTF/FITS region file, first shape)")
    p.add_argument("--hdu", default=None, help="HDU index or name (default: the first image HDU)")
    p.add_argument("--plane", type=int, default=None, help="plane of a cube, 0-based (default: 0, with a warning)")
    add_model_args(p)
    p.add_argument("--batch-size", type=int, default=8, help="tiles per model call (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--iou", type=float, default=0.5, help="merge boxes of one class overlapping this much (0.5)")
    p.add_argument("--out", required=True, help="catalogue: .ecsv (default choice), .csv or .fits")
    p.add_argument("--regions-out", help="sky regions: .reg (DS9), .crtf, or .fits (pixel shapes)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted scan (same settings)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_scan)


# ---------------------------------------------------------------------------- similar
def cmd_similar(args) -> int:
    from tqdm import tqdm

    from .cli_args import check_output_args, cutout_from_args, model_spec
    from .core.assistant import Assistant
    from .core.models import quiet_transformers
    from .core.scan import plan_tiles
    from .core.similar import build_index, search_text, similar_to, text_question
    from .core.skyregions import boxes_format, write_boxes

    try:
        boxes_format(args.out)               # a wrong suffix fails before the model loads
    except RadioLlavaError as exc:
        raise RadioLlavaError(f"--out {exc}") from None
    check_output_args(args, {"--out": args.out})
    if args.text is not None:
        text_question(args.text)             # an empty description fails before the model loads
    image = _image(args)
    plan_tiles(image.shape, args.tile, args.overlap)    # a bad tiling fails before the model loads
    query = cutout_from_args(args, image) if args.text is None else None
    quiet_transformers()
    assistant = Assistant(model_spec(args))
    bar = tqdm(unit="tile", file=sys.stderr, disable=args.quiet)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        if query is not None:
            bar.set_description("index")
            index = build_index(image, assistant, args.tile, args.overlap, args.cache_dir, args.rebuild,
                                on_progress=progress)
            matches = similar_to(index, assistant, query, args.top)
            where = f"index {index.path}" + (" (cached)" if index.from_cache else " (built)")
        else:
            bar.set_description("search")
            matches = search_text(image, assistant, args.text, args.tile, args.overlap, args.top,
                                  on_progress=progress)
            where = f'P(Yes) for "{text_question(args.text)}"'
    finally:
        bar.close()
    import numpy as np

    written = write_boxes(args.out, matches, image.wcs, extra={"rank": np.arange(1, len(matches) + 1)})
    for rank, b in enumerate(matches, 1):
        print(f"{rank:3d}. {b.where(5)}  score {b.score:.4f}")
    print(f"{len(matches)} tiles ranked by {where}")
    print(f"wrote {written}")
    return 0


def add_similar_parser(sub) -> None:
    from .cli_args import add_model_args, add_region_args

    p = sub.add_parser("similar", help="rank the mosaic's tiles by likeness to a region, or by a description",
                       description="Find more like this: every tile of the mosaic is embedded once with the "
                       "model's vision tower (cached on disk per mosaic, model and tiling) and ranked by cosine "
                       "similarity to the region; or, with --text, ranked by the probability of Yes to "
                       '"Does this image contain TEXT?". Writes the top K tiles as regions or a table.')
    example = add_region_args(p, "FITS mosaic with a celestial WCS")     # the example region …
    example.add_argument("--text", help='… or a description: "extended radio galaxy with bent jets"')
    p.add_argument("--top", type=int, default=10, help="how many tiles to keep (default 10)")
    p.add_argument("--tile", type=int, default=128, help="tile size in pixels (default 128)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap, fraction of a tile (default 0.25)")
    add_model_args(p)
    p.add_argument("--cache-dir", help="where indexes are kept (default ~/.cache/glue-radiollava/index)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index even when a cached one matches")
    p.add_argument("--out", required=True, help="regions (.reg DS9, .crtf) or a table (.ecsv, .csv, .fits)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_similar)


def add_subcommands(sub) -> None:
    add_scan_parser(sub)
    add_similar_parser(sub)
