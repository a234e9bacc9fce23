"""Model recipes: ``radiollava train recipe nano --out DIR [--quick] [--seed S]``.

nano is a LLaVA-OneVision (SigLIP-style vision tower, MLP projector, Qwen2-style LLM) trained from
scratch on the project's simulator and the real FIRST/NVSS galaxies of ``shared/data/train_real``
(when that folder is present), so anyone can rebuild it from the project and its data:

1. simulate radio cutouts of many sizes and every survey preset (seeded), read the real galaxies,
   and build LLaVA conversations with the dataset builder;
2. stage 1 — train the vision tower alone on the pictures, with heads for the image labels
   (radioimg-multilabel, peculiarity, component/peak class, FR class; real galaxies rotated and
   flipped) and a dense head per patch (is a box of class c centred here? where inside the patch,
   and where in the picture, how big?), so its features carry the numbers the LLM must write;
3. stage 2 — freeze it, build the LLaVA model around it with a tokenizer trained on the
   conversations (one token per box coordinate 0.0 … 1.0), and train projector + LLM on single- and
   multi-turn conversations with the fine-tuning code.

Training a LLaVA end to end from random weights on a CPU learns the answer format but ignores the
picture (platform facts); the two stages are what make it look.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.labels import FR, MULTILABELS, PECULIARITY, SIMULATED_BOX_CLASSES, SMORPH

BOX_CLASSES = SIMULATED_BOX_CLASSES + ("RADIO-GALAXY",) + FR      # the classes of the stage-1 box head


# (scene, survey preset, cutout size in px, number of images): what a person may select in glue
SIM_SETS = (
    ("field", "lotss", 64, 400), ("field", "lotss", 32, 100), ("field", "lotss", 128, 400),
    ("field", "lotss", 256, 350), ("field", "lotss", 512, 80), ("field", "first", 96, 150),
    ("field", "first", 256, 120), ("field", "emu", 64, 100), ("field", "emu", 192, 120),
    ("source", "lotss", 64, 300), ("source", "first", 128, 120),
    ("galaxy", "lotss", 64, 200), ("galaxy", "first", 96, 120), ("galaxy", "emu", 128, 80),
)


@dataclass(frozen=True)
class Recipe:
    name: str = "nano"
    seed: int = 20261128
    sim_sets: tuple = SIM_SETS
    real_limit: int | None = None        # real galaxies used (None: all of train_real)
    real_val_fraction: float = 0.1       # of the sky groups of real galaxies, held out
    real_zoom_out: tuple = ((2.0, 0.5),)  # (factor, share): real galaxies also set in wider noise fields
    real_crop_jitter: float = 0.0         # stage 1: real galaxies also cut at (1 - this)–100 % of their field
    image_size: int = 128
    patch_size: int = 16                 # 8 × 8 patches per view
    coordinate_tokens: bool = True       # one token per box coordinate value
    vision_hidden: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 192
    text_layers: int = 3
    text_heads: int = 4
    vocab_size: int = 1200
    stage1_steps: int = 6000
    stage1_batch: int = 32
    stage1_lr: float = 1e-3
    stage2_steps: int = 5500
    stage2_batch: int = 16
    stage2_lr: float = 1e-3
    val_fraction: float = 0.05
    long_prompt_keep: float = 0.4         # share of the simulated long-context questions (B1, B2, B5) kept
    negative_box_keep: float = 0.3        # share of "no such source" box answers kept (they are ~70 %)
    multi_turn: float = 0.3               # share of conversations trained as 2–4 turns instead of singles
    rare_repeat: int = 2                  # records answering a rare class, repeated
    box_repeat: int = 2                   # records answering with boxes, repeated
    max_train_boxes: int | None = None    # box answers listing more boxes than this are left out


NANO = Recipe()
NANO_QUICK = replace(NANO, sim_sets=(("field", "lotss", 64, 40), ("field", "first", 128, 20),
                                     ("source", "lotss", 64, 20), ("galaxy", "lotss", 64, 20)),
                     real_limit=40, real_zoom_out=((2.0, 0.3),), vision_hidden=64, vision_layers=2,
                     vision_heads=2, text_hidden=128, text_layers=2, text_heads=4, vocab_size=900,
                     stage1_steps=120, stage1_batch=32, stage2_steps=160, stage2_batch=8, stage2_lr=3e-3,
                     long_prompt_keep=0.2)
RECIPES = {"nano": NANO}
# answers the simulator and the real data hold rarely; balanced sampling repeats their records
RARE = ("DIFFUSE", "ARTIFACT", "PECULIAR", "FR-I", "FILAMENT")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------- data
def _set_name(scene: str, survey: str, size: int) -> str:
    return f"{scene}-{survey}-{size}"


def make_data(recipe: Recipe, work: Path, real_root: Path | None = None) -> tuple[Path, Path]:
    """Simulate the scenes, read the real galaxies and build the conversations (each step skipped
    when its output is already there, so an interrupted run resumes); returns (sims, data)."""
    from .datasets import BuildOptions, build_dataset
    from .simulate import config_for, write_simulation

    sims = work / "sim"
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    inputs = []
    for k, (scene, survey, size, n) in enumerate(recipe.sim_sets):
        folder = sims / _set_name(scene, survey, size)
        if not (folder / "objects.json").is_file():
            write_simulation(folder, n, seed=recipe.seed + k, cfg=config_for(size, scene, survey),
                             progress=False, overwrite=True)
        inputs.append(("sim", folder, data / f"{folder.name}.json", "auto"))
    if real_root is not None:
        from .real_galaxies import read_train_real, write_references

        refs = data / "real_val.reference.json"
        if not refs.is_file():
            rows = read_train_real(real_root, recipe.real_limit, recipe.seed)
            write_references(rows, data, recipe.real_val_fraction, recipe.seed, recipe.real_zoom_out)
        for name in ("real_train", "real_val"):
            inputs.append(("labels", data / f"{name}.reference.json", data / f"{name}.json", "fr"))
    for kind, source, out, scheme in inputs:
        if not out.is_file():
            build_dataset(BuildOptions(kind=kind, input=str(source), out=str(out), seed=recipe.seed,
                                       scheme=scheme, progress=False, overwrite=True), log=lambda m: None)
    return sims, data


def real_data_root() -> Path | None:
    """``shared/data/train_real`` when present (the recipe then trains on real galaxies too)."""
    from glue_radiollava.core.files import data_root

    from .real_galaxies import FOLDER

    try:
        root = data_root() / FOLDER
    except RadioLlavaError:
        return None
    return root if (root / "labels.csv").is_file() else None


DENSE = ("objectness", "dx", "dy", "log w", "log h", "cx", "cy", "w", "h")   # the dense head's channels


def _truth_targets(truth: dict, grid: int, transform):
    """Image-level and per-patch targets from the simulator's truth of one image.

    Per box class and patch: is a box centred here; its centre inside the patch; its log size; and
    its absolute centre and size as fractions of the picture (what the LLM writes). Boxes go to the
    picture through its own ``transform`` (the one the dataset builder rendered it with), so
    cutouts of every size, flip and padding mix."""
    import numpy as np

    labels = np.array([label in truth["labels"] for label in MULTILABELS], np.float32)
    pec = PECULIARITY.index(truth["peculiarity"]) if truth.get("peculiarity") in PECULIARITY else -100
    smorph = SMORPH.index(truth["smorph"]) if truth.get("smorph") in SMORPH else -100
    fr = FR.index(truth["fr_class"]) if truth.get("fr_class") in FR else -100
    dense = np.zeros((len(BOX_CLASSES), len(DENSE), grid, grid), np.float32)
    for obj in truth["objects"]:
        classes = {obj["class"]} | ({"RADIO-GALAXY"} if obj.get("radio_galaxy") else set())
        if obj.get("fr_class") in FR:
            classes.add(obj["fr_class"])
        X0, Y0, X1, Y1 = obj["pixel_box"]
        u0, v0, u1, v1 = transform.mosaic_box_to_normalised(X0, Y0, X1, Y1)
        su0, sv0, su1, sv1 = transform.mosaic_box_to_normalised(X0, Y0, max(X1, X0 + 1), max(Y1, Y0 + 1))
        u, v, w, h = (u0 + u1) / 2, (v0 + v1) / 2, su1 - su0, sv1 - sv0   # sizes of at least a pixel
        gx, gy = min(max(int(u * grid), 0), grid - 1), min(max(int(v * grid), 0), grid - 1)
        for c in classes:
            if c in BOX_CLASSES:
                dense[BOX_CLASSES.index(c), :, gy, gx] = (1.0, u * grid - gx, v * grid - gy, math.log(w),
                                                          math.log(h), u, v, w, h)
    return labels, pec, smorph, fr, dense, 1.0


def _picture_transforms(meta: Path) -> dict:
    """Record id → the Transform its picture was rendered with (the dataset builder's meta file)."""
    from glue_radiollava.core.transform import Transform

    if not meta.is_file():
        raise RadioLlavaError(f"{meta} is missing: the pictures' transforms are in it; rebuild the dataset")
    records = json.loads(meta.read_text())["records"]
    return {rid: Transform.from_dict(r["transform"]) for rid, r in records.items() if r.get("transform")}


def _real_targets(label: str, grid: int):
    """A real galaxy: only its FR class is known (the other targets are masked)."""
    import numpy as np

    return (np.zeros(len(MULTILABELS), np.float32), -100, -100, FR.index(label),
            np.zeros((len(BOX_CLASSES), len(DENSE), grid, grid), np.float32), 0.0)


def load_stage1(sims: Path | None, data: Path, recipe: Recipe, image_processor, real: str = "real_train"):
    """Pictures (as the processor normalises them) and targets: every simulated image in ``sims``
    (None: none), and the real galaxies of the ``real`` dataset when there is one. The last target
    says "simulated"."""
    import numpy as np
    import torch
    from PIL import Image

    grid = recipe.image_size // recipe.patch_size
    pixels, targets = [], []
    for folder in sorted(p for p in sims.iterdir() if p.is_dir()) if sims is not None else []:
        objects = json.loads((folder / "objects.json").read_text())["images"]
        pictures = data / f"{folder.name}_images"
        transforms = _picture_transforms(data / f"{folder.name}.meta.json")
        for truth in objects:
            png = pictures / f"{truth['sname']}.png"
            if not png.is_file() or truth["sname"] not in transforms:
                continue
            with Image.open(png) as im:
                pixels.append(im.convert("RGB"))
            targets.append(_truth_targets(truth, grid, transforms[truth["sname"]]))
    ref = data / f"{real}.reference.json"
    if ref.is_file():
        for item in json.loads(ref.read_text())["data"]:
            png = data / f"{real}_images" / f"{item['sname']}.png"
            if png.is_file():
                with Image.open(png) as im:
                    pixels.append(im.convert("RGB"))
                targets.append(_real_targets(item["label"], grid))
    if not pixels:
        return None
    batch = image_processor(images=pixels, return_tensors="pt")["pixel_values"]
    values = batch[:, 0] if batch.ndim == 5 else batch             # LLaVA-OneVision: the base view
    cols = list(zip(*targets))
    return (values, torch.tensor(np.stack(cols[0])), torch.tensor(cols[1]), torch.tensor(cols[2]),
            torch.tensor(cols[3]), torch.tensor(np.stack(cols[4])), torch.tensor(cols[5]))


class _Stage1(object):
    """The vision tower plus its training heads (the heads are dropped afterwards)."""

    def __new__(cls, vision_config, n_dense: int):
        import torch
        from transformers import SiglipVisionModel

        class Stage1(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.tower = SiglipVisionModel(vision_config)
                d = vision_config.hidden_size
                self.labels = torch.nn.Linear(d, len(MULTILABELS))
                self.pec = torch.nn.Linear(d, len(PECULIARITY))
                self.smorph = torch.nn.Linear(d, len(SMORPH))
                self.fr = torch.nn.Linear(d, len(FR))
                self.dense = torch.nn.Linear(d, n_dense * len(DENSE))

            def forward(self, pixel_values):
                # what LLaVA-OneVision feeds its projector: the last layer, before post_layernorm
                hidden = self.tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-1]
                pooled = hidden.mean(1)
                b, n, _ = hidden.shape
                g = int(math.isqrt(n))
                dense = self.dense(hidden).view(b, g, g, -1, len(DENSE)).permute(0, 3, 4, 1, 2)
                return self.labels(pooled), self.pec(pooled), self.smorph(pooled), self.fr(pooled), dense

        return Stage1()


def _augment_real(values, is_sim, generator, jitter: float = 0.0):
    """Real galaxies turned by a random multiple of 90°, mirrored half the time (FR class does not
    depend on orientation) and, with ``jitter`` j > 0, cut at (1 - j)–100 % of their field around a
    random point and resized back (a person's selection is never exactly MiraBest's crop).
    Simulated pictures stay as they are (their boxes would move)."""
    import torch
    import torch.nn.functional as F

    out = values.clone()
    size = values.shape[-1]
    for i in torch.nonzero(is_sim < 0.5).flatten().tolist():
        k = int(torch.randint(4, (1,), generator=generator))
        x = torch.rot90(values[i], k, (1, 2))
        if torch.rand(1, generator=generator) < 0.5:
            x = torch.flip(x, (2,))
        side = int(size * (1 - jitter * float(torch.rand(1, generator=generator)))) if jitter else size
        if side < size:
            y0, x0 = (int(torch.randint(size - side + 1, (1,), generator=generator)) for _ in range(2))
            x = F.interpolate(x[None, :, y0:y0 + side, x0:x0 + side], size=(size, size), mode="bilinear",
                              align_corners=False)[0]
        out[i] = x
    return out


def train_vision(recipe: Recipe, sims: Path, data: Path, image_processor, log=_log):
    """Stage 1; returns the vision tower's state dict and its held-out scores."""
    import torch
    import torch.nn.functional as F
    from transformers import SiglipVisionConfig

    torch.manual_seed(recipe.seed)
    values, labels, pec, smorph, fr, dense, is_sim = load_stage1(sims, data, recipe, image_processor)
    n = len(values)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(recipe.seed))
    sim_idx = order[is_sim[order] > 0.5]
    n_val = max(1, int(len(sim_idx) * recipe.val_fraction))
    val, tr = sim_idx[:n_val], torch.cat([sim_idx[n_val:], order[is_sim[order] < 0.5]])
    config = SiglipVisionConfig(hidden_size=recipe.vision_hidden, intermediate_size=2 * recipe.vision_hidden,
                                num_hidden_layers=recipe.vision_layers, num_attention_heads=recipe.vision_heads,
                                image_size=recipe.image_size, patch_size=recipe.patch_size, vision_use_head=False)
    model = _Stage1(config, len(BOX_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.stage1_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.stage1_lr, total_steps=recipe.stage1_steps,
                                                pct_start=0.1)

    def losses(x, idx):
        out = model(x)
        sim = is_sim[idx] > 0.5
        loss = F.cross_entropy(out[3], fr[idx], ignore_index=-100) if (fr[idx] >= 0).any() else 0
        if sim.any():
            obj_target = dense[idx][sim][:, :, 0]
            loss = (loss + F.binary_cross_entropy_with_logits(out[0][sim], labels[idx][sim])
                    + F.cross_entropy(out[1][sim], pec[idx][sim])
                    + (F.cross_entropy(out[2], smorph[idx], ignore_index=-100) if (smorph[idx] >= 0).any() else 0)
                    + 2 * F.binary_cross_entropy_with_logits(out[4][sim][:, :, 0], obj_target,
                                                             pos_weight=torch.tensor(10.0)))
            mask = obj_target > 0
            if mask.any():
                reg = (out[4][sim][:, :, 1:] - dense[idx][sim][:, :, 1:]).pow(2)
                reg = reg[:, :, :4].sum(2) + 10 * reg[:, :, 4:].sum(2)    # absolute values in picture units
                loss = loss + 2 * reg[mask].mean()
        return loss, out

    g = torch.Generator().manual_seed(recipe.seed + 1)
    model.train()
    start = time.perf_counter()
    for step in range(recipe.stage1_steps):
        idx = tr[torch.randint(len(tr), (recipe.stage1_batch,), generator=g)]
        loss, _ = losses(_augment_real(values[idx], is_sim[idx], g, recipe.real_crop_jitter), idx)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, recipe.stage1_steps // 10) == 0 or step == recipe.stage1_steps - 1:
            log(f"stage 1 step {step + 1}/{recipe.stage1_steps} loss {float(loss):.3f}")
    model.eval()
    with torch.no_grad():
        loss, out = losses(values[val], val)
        exact = ((out[0] > 0) == (labels[val] > 0.5)).all(1).float().mean()
        pec_acc = (out[1].argmax(1) == pec[val]).float().mean()
        scores = {"val_loss": float(loss), "labels_exact_set": float(exact), "peculiarity_acc": float(pec_acc)}
        real_train = tr[is_sim[tr] < 0.5][:400]
        if len(real_train):
            pred = model(values[real_train])[3].argmax(1)
            scores["real_fr_train_acc"] = float((pred == fr[real_train]).float().mean())
        real_val = load_stage1(None, data, recipe, image_processor, real="real_val")
        if real_val is not None:
            pred = model(real_val[0])[3].argmax(1)
            scores["real_fr_acc"] = float((pred == real_val[4]).float().mean())
            scores["real_val_images"] = len(pred)
    scores.update(steps=recipe.stage1_steps, seconds=round(time.perf_counter() - start, 1))
    log(f"stage 1 done: {scores}")
    return model.tower.state_dict(), scores


def _cached_stage1(recipe: Recipe, work: Path, real: bool, run):
    """Stage 1 depends on the data and the vision tower only: keep its result in the work folder,
    so that rerunning the recipe with other stage-2 settings does not train it again."""
    import torch

    key = {k: v for k, v in asdict(recipe).items() if k in ("seed", "sim_sets", "real_limit", "image_size",
                                                             "patch_size", "real_val_fraction", "real_zoom_out",
                                                             "real_crop_jitter",
                                                             "vision_hidden", "vision_layers",
                                                             "vision_heads", "stage1_steps", "stage1_batch",
                                                             "stage1_lr", "val_fraction")}
    key["real"] = real
    path = work / "stage1.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("key") == json.dumps(key, sort_keys=True):
            return saved["state"], saved["scores"]
    state, scores = run()
    torch.save({"key": json.dumps(key, sort_keys=True), "state": state, "scores": scores}, path)
    return state, scores


# ---------------------------------------------------------------------------- stage 2
def _is_long(question: str) -> bool:
    return question.startswith("### Context")


def _is_negative_box(question: str, answer: str) -> bool:
    return "bounding box" in question and not answer.lstrip().startswith("[")


def _is_rare(answer: str) -> bool:
    return any(c in answer for c in RARE)


def _n_boxes(answer: str) -> int:
    return answer.count("[") if answer.lstrip().startswith("[") else 0


def _record(rid: str, image: str, pairs) -> dict:
    conv = []
    for i, (q, a) in enumerate(pairs):
        conv += [{"from": "human", "value": ("<image>\n" if i == 0 else "") + q}, {"from": "gpt", "value": a}]
    return {"id": rid, "image": image, "conversations": conv}


def conversations(data: Path, out: Path, recipe: Recipe) -> tuple[Path, Path, list[str]]:
    """Stage-2 records from the built datasets; returns (train JSON, validation JSON, corpus text).

    - Questions with a long context (the simulated B1, B2, B5 prompts: ~300 tokens against ~40)
      cost most of a CPU's time; ``long_prompt_keep`` of them are kept (real galaxies keep all).
    - Most box questions ask for a class the cutout does not hold; ``negative_box_keep`` of those
      "no such source" answers are kept, so boxes are seen more often than refusals.
    - ``multi_turn`` of the conversations are cut into runs of 2–4 questions (a long one only last),
      the rest into single questions: a follow-up must not spoil an answer.
    - Records answering a rare class are repeated ``rare_repeat`` times, those answering with boxes
      ``box_repeat`` times; box answers longer than ``max_train_boxes`` boxes are left out.
    The validation records are the real galaxies held out by sky position and a share of the
    simulated images."""
    rng = random.Random(recipe.seed)
    train, val, corpus = [], [], []
    for path in sorted(data.glob("*.json")):
        if path.name.endswith((".meta.json", ".reference.json")) or path.name.startswith("stage2"):
            continue
        real = path.stem.startswith("real")
        for rec in json.loads(path.read_text()):
            conv = rec["conversations"]
            pairs = [(conv[i]["value"].replace("<image>\n", ""), conv[i + 1]["value"]) for i in range(0, len(conv), 2)]
            corpus += [t for pair in pairs for t in pair]
            pairs = [(q, a) for q, a in pairs
                     if (real or not _is_long(q) or rng.random() < recipe.long_prompt_keep)
                     and (not _is_negative_box(q, a) or rng.random() < recipe.negative_box_keep)
                     and (recipe.max_train_boxes is None or _n_boxes(a) <= recipe.max_train_boxes)]
            image = f"{path.stem}_images/" + Path(rec["image"]).name
            held = path.stem == "real_val" or (not real and rng.random() < recipe.val_fraction)
            if held:
                val += [_record(f"{rec['id']}-{k}", image, [p]) for k, p in enumerate(pairs)]
                continue
            short, long = [p for p in pairs if not _is_long(p[0])], [p for p in pairs if _is_long(p[0])]
            groups = []
            if len(pairs) >= 2 and rng.random() < recipe.multi_turn:
                rng.shuffle(short)
                while short:
                    n = rng.randint(1, 3)
                    groups.append(short[:n])
                    short = short[n:]
                for p in long:
                    groups.append((rng.choice(groups) if groups and rng.random() < 0.5 else []) + [p])
            else:
                groups = [[p] for p in short + long]
            for k, group in enumerate(groups):
                repeat = max(recipe.rare_repeat if any(_is_rare(a) for _, a in group) else 1,
                             recipe.box_repeat if any(_n_boxes(a) for _, a in group) else 1)
                train += [_record(f"{rec['id']}-{k}", image, group)] * repeat
    rng.shuffle(train)
    rng.shuffle(val)
    (out / "stage2_train.json").write_text(json.dumps(train))
    (out / "stage2_val.json").write_text(json.dumps(val[:400]))
    return out / "stage2_train.json", out / "stage2_val.json", corpus


def run_recipe(name: str, out: str | Path, quick: bool = False, seed: int | None = None,
               work: str | Path | None = None, log=_log) -> Path:
    """The whole recipe; writes the model folder ``out`` (fp16 weights, profile, card)."""
    import torch

    from glue_radiollava.core.tiny import build_tiny, build_tokenizer

    from .finetune import last_complete_checkpoint, load_config, train

    if name not in RECIPES:
        raise RadioLlavaError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    recipe = NANO_QUICK if quick else RECIPES[name]
    if seed is not None:
        recipe = replace(recipe, seed=seed)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RadioLlavaError(f"{out} exists and is not empty; choose a new folder")
    work = Path(work) if work else out.parent / f".{out.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    started = time.perf_counter()
    log(f"recipe {name}{' (quick)' if quick else ''}: {asdict(recipe)}")
    real_root = real_data_root()
    if real_root is None:
        log("shared/data/train_real is absent: training on simulated data only")
    sims, data = make_data(recipe, work, real_root)
    log("data ready")
    train_json, val_json, corpus = conversations(data, data, recipe)
    tokenizer = build_tokenizer(recipe.vocab_size, corpus=corpus, coordinate_tokens=recipe.coordinate_tokens)
    # an untrained model folder gives the exact image processor the final model uses
    scaffold = build_tiny(work / "scaffold", seed=recipe.seed, image_size=recipe.image_size,
                          patch_size=recipe.patch_size, hidden=recipe.vision_hidden, layers=recipe.vision_layers,
                          vision_heads=recipe.vision_heads, text_hidden=recipe.text_hidden,
                          text_layers=recipe.text_layers, text_heads=recipe.text_heads, tokenizer=tokenizer)
    from glue_radiollava.core.models import FAMILIES, load_processor

    processor = load_processor(scaffold, FAMILIES["llava_onevision"])
    vision_state, stage1 = _cached_stage1(recipe, work, real_root is not None,
                                          lambda: train_vision(recipe, sims, data, processor.image_processor, log))
    base = build_tiny(work / "stage2-base", seed=recipe.seed, image_size=recipe.image_size,
                      patch_size=recipe.patch_size, hidden=recipe.vision_hidden, layers=recipe.vision_layers,
                      vision_heads=recipe.vision_heads, text_hidden=recipe.text_hidden,
                      text_layers=recipe.text_layers, text_heads=recipe.text_heads, tokenizer=tokenizer,
                      vision_state=vision_state)
    stage2_dir = work / "stage2"
    # an interrupted stage 2 resumes from its last checkpoint when the recipe and the data are the same
    key = json.dumps({"recipe": asdict(recipe), "records": train_json.stat().st_size, "real": real_root is not None},
                     sort_keys=True, default=str)
    key_file = work / "stage2.key"
    resume = (key_file.is_file() and key_file.read_text() == key
              and last_complete_checkpoint(stage2_dir / "checkpoints")[0] is not None)
    if stage2_dir.exists() and not resume:
        shutil.rmtree(stage2_dir)
    key_file.write_text(key)
    config = load_config(None, dict(
        base=str(base), data=str(train_json), val_data=str(val_json), out=str(stage2_dir), method="full",
        freeze_vision=True, max_steps=recipe.stage2_steps, per_device_batch_size=recipe.stage2_batch,
        gradient_accumulation_steps=1, learning_rate=recipe.stage2_lr, lr_scheduler="cosine", warmup_ratio=0.03,
        weight_decay=0.0, gradient_checkpointing=False, logging_steps=max(1, recipe.stage2_steps // 50),
        eval_steps=max(1, recipe.stage2_steps // 5), save_steps=max(1, recipe.stage2_steps // 5),
        save_total_limit=1, seed=recipe.seed, bf16="false", group_by_length=True, resume=resume))
    log(f"stage 2: {len(json.loads(train_json.read_text()))} records{' (resumed)' if resume else ''}")
    train(config)
    card = json.loads((stage2_dir / "training_card.json").read_text())
    _ship(stage2_dir, out, recipe, name, quick, stage1, card, time.perf_counter() - started, real_root is not None)
    log(f"wrote {out} in {(time.perf_counter() - started) / 60:.1f} min")
    return out


def _ship(stage2: Path, out: Path, recipe: Recipe, name: str, quick: bool, stage1: dict, card: dict,
          seconds: float, real: bool) -> None:
    """fp16 weights in the HF layout, processor, profile and a card with the recipe."""
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(stage2, dtype=torch.float32)
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.to(torch.float16).save_pretrained(tmp)
    for f in stage2.iterdir():
        if f.is_file() and f.suffix in (".json", ".jinja") and f.name not in ("config.json", "training_card.json",
                                                                               "generation_config.json"):
            shutil.copy(f, tmp / f.name)
    command = f"radiollava train recipe {name} --out DIR" + (" --quick" if quick else "") + \
        (f" --seed {recipe.seed}" if recipe.seed != NANO.seed else "")
    recipe_card = {"name": name, "quick": quick, "command": command, "recipe": asdict(recipe),
                   "real_data": real,
                   "stage1": stage1, "stage2": {k: card.get(k) for k in ("train_loss", "final_eval_loss", "steps",
                                                                         "parameters", "trainable", "minutes")},
                   "minutes": round(seconds / 60, 1), "dtype": "float16",
                   "parameters": sum(p.numel() for p in model.parameters())}
    (tmp / "recipe.json").write_text(json.dumps(recipe_card, indent=1) + "\n")
    if out.exists():
        out.rmdir()
    tmp.rename(out)


def run_recipe_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radiollava train recipe",
                                     description="train a model by the project's own recipe")
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--out", required=True, help="the model folder to write")
    parser.add_argument("--quick", action="store_true", help="a reduced run (minutes) for checks, not for shipping")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--work", help="folder for the simulated data and checkpoints (default: beside --out)")
    args = parser.parse_args(argv)
    run_recipe(args.name, args.out, quick=args.quick, seed=args.seed, work=args.work)
    return 0
