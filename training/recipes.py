"""Model recipes: ``radiollava train recipe nano --out DIR [--quick] [--seed S]``.

nano is a LLaVA-OneVision (SigLIP-style vision tower, MLP projector, Qwen2-style LLM) trained from
scratch on the project's simulator only, so anyone can rebuild it from the project alone:

1. simulate radio cutouts (seeded) and build LLaVA conversations with the dataset builder;
2. stage 1 — train the vision tower alone on the pictures, with heads for the image labels
   (radioimg-multilabel, peculiarity, component/peak class, FR class) and a dense head per patch
   (is a box of class c centred here? where, how big?), so its features carry positions and counts;
3. stage 2 — freeze it, build the LLaVA model around it with a tokenizer trained on the
   conversations, and train projector + LLM on single-turn conversations with the fine-tuning code.

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
from glue_radiollava.core.labels import MULTILABELS, PECULIARITY

SMORPH = ("1C-1P", "1C-2P", "1C-3P", "2C-2P", "2C-3P", "3C-3P")
FR = ("FR-I", "FR-II")
BOX_CLASSES = ("COMPACT", "EXTENDED", "EXTENDED-MULTISLAND", "SPURIOUS", "RADIO-GALAXY", "FR-I", "FR-II")


@dataclass(frozen=True)
class Recipe:
    name: str = "nano"
    seed: int = 20261128
    n_images: int = 2400
    image_size: int = 64
    patch_size: int = 16                 # 4 × 4 patches per view: short sequences on a CPU
    scenes: tuple = ("field", "field", "source", "galaxy")   # the mix of simulated scenes
    vision_hidden: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 192
    text_layers: int = 3
    text_heads: int = 4
    vocab_size: int = 1200
    stage1_steps: int = 2000
    stage1_batch: int = 32
    stage1_lr: float = 1e-3
    stage2_steps: int = 3000
    stage2_batch: int = 16
    stage2_lr: float = 1e-3
    val_fraction: float = 0.05
    long_prompt_keep: float = 0.4         # share of the long-context questions (B1, B2, B5) kept
    negative_box_keep: float = 1.0        # share of "no such source" box answers kept (they are ~70 %)


NANO = Recipe()
NANO_QUICK = replace(NANO, n_images=120, vision_hidden=64, vision_layers=2, vision_heads=2, text_hidden=128,
                     text_layers=2, text_heads=4, vocab_size=900, stage1_steps=150, stage1_batch=32,
                     stage2_steps=240, stage2_batch=8, stage2_lr=3e-3, long_prompt_keep=0.2)
RECIPES = {"nano": NANO}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------- data
def make_data(recipe: Recipe, work: Path) -> tuple[Path, Path]:
    """Simulate the scenes and build the conversations; returns (simulation folders, dataset JSON)."""
    from .datasets import BuildOptions, build_dataset
    from .simulate import config_for, write_simulation

    sims = work / "sim"
    per_scene: dict[str, int] = {}
    for scene in recipe.scenes:
        per_scene[scene] = per_scene.get(scene, 0) + recipe.n_images // len(recipe.scenes)
    folders = []
    for k, (scene, n) in enumerate(per_scene.items()):
        folder = sims / scene
        if not (folder / "objects.json").is_file():
            write_simulation(folder, n, seed=recipe.seed + k, cfg=config_for(recipe.image_size, scene),
                             progress=False, overwrite=True)
        folders.append(folder)
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        out = data / f"{folder.name}.json"
        if not out.is_file():
            build_dataset(BuildOptions(kind="sim", input=str(folder), out=str(out), seed=recipe.seed,
                                       progress=False), log=lambda m: None)
    return sims, data


def _truth_targets(truth: dict, size: int, grid: int):
    """Image-level and per-patch targets from the simulator's truth of one image."""
    import numpy as np

    labels = np.array([label in truth["labels"] for label in MULTILABELS], np.float32)
    pec = PECULIARITY.index(truth["peculiarity"]) if truth.get("peculiarity") in PECULIARITY else -100
    smorph = SMORPH.index(truth["smorph"]) if truth.get("smorph") in SMORPH else -100
    fr = FR.index(truth["fr_class"]) if truth.get("fr_class") in FR else -100
    dense = np.zeros((len(BOX_CLASSES), 5, grid, grid), np.float32)      # objectness, dx, dy, log w, log h
    cell = size / grid
    for obj in truth["objects"]:
        classes = {obj["class"]} | ({"RADIO-GALAXY"} if obj.get("radio_galaxy") else set())
        if obj.get("fr_class") in FR:
            classes.add(obj["fr_class"])
        X0, Y0, X1, Y1 = obj["pixel_box"]
        # the radio-llava picture is the FITS array, row 0 at the top: picture px = FITS px + 0.5
        cx, cy, w, h = (X0 + X1) / 2 + 0.5, (Y0 + Y1) / 2 + 0.5, X1 - X0, Y1 - Y0
        gx, gy = min(int(cx // cell), grid - 1), min(int(cy // cell), grid - 1)
        for c in classes:
            if c in BOX_CLASSES:
                k = BOX_CLASSES.index(c)
                dense[k, :, gy, gx] = (1.0, cx / cell - gx, cy / cell - gy, math.log(max(w, 1) / size),
                                       math.log(max(h, 1) / size))
    return labels, pec, smorph, fr, dense


def load_stage1(sims: Path, data: Path, recipe: Recipe, image_processor):
    """Pictures (as the processor normalises them) and targets, for every simulated image."""
    import numpy as np
    import torch
    from PIL import Image

    grid = recipe.image_size // recipe.patch_size
    pixels, targets = [], []
    for folder in sorted(p for p in sims.iterdir() if p.is_dir()):
        objects = json.loads((folder / "objects.json").read_text())["images"]
        pictures = data / f"{folder.name}_images"
        for truth in objects:
            png = pictures / f"{truth['sname']}.png"
            if not png.is_file():
                continue
            with Image.open(png) as im:
                pixels.append(np.asarray(im.convert("RGB")))
            targets.append(_truth_targets(truth, recipe.image_size, grid))
    batch = image_processor(images=[Image.fromarray(p) for p in pixels], return_tensors="pt")["pixel_values"]
    values = batch[:, 0] if batch.ndim == 5 else batch             # LLaVA-OneVision: the base view
    cols = list(zip(*targets))
    return (values, torch.tensor(np.stack(cols[0])), torch.tensor(cols[1]), torch.tensor(cols[2]),
            torch.tensor(cols[3]), torch.tensor(np.stack(cols[4])))


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
                self.dense = torch.nn.Linear(d, n_dense * 5)

            def forward(self, pixel_values):
                # what LLaVA-OneVision feeds its projector: the last layer, before post_layernorm
                hidden = self.tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-1]
                pooled = hidden.mean(1)
                b, n, _ = hidden.shape
                g = int(math.isqrt(n))
                dense = self.dense(hidden).view(b, g, g, -1, 5).permute(0, 3, 4, 1, 2)
                return self.labels(pooled), self.pec(pooled), self.smorph(pooled), self.fr(pooled), dense

        return Stage1()


def train_vision(recipe: Recipe, sims: Path, data: Path, image_processor, log=_log):
    """Stage 1; returns the vision tower's state dict and its held-out scores."""
    import torch
    import torch.nn.functional as F
    from transformers import SiglipVisionConfig

    torch.manual_seed(recipe.seed)
    values, labels, pec, smorph, fr, dense = load_stage1(sims, data, recipe, image_processor)
    n = len(values)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(recipe.seed))
    n_val = max(1, int(n * recipe.val_fraction))
    val, tr = order[:n_val], order[n_val:]
    config = SiglipVisionConfig(hidden_size=recipe.vision_hidden, intermediate_size=2 * recipe.vision_hidden,
                                num_hidden_layers=recipe.vision_layers, num_attention_heads=recipe.vision_heads,
                                image_size=recipe.image_size, patch_size=recipe.patch_size, vision_use_head=False)
    model = _Stage1(config, len(BOX_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.stage1_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.stage1_lr, total_steps=recipe.stage1_steps,
                                                pct_start=0.1)

    def losses(idx):
        out = model(values[idx])
        obj_target = dense[idx][:, :, 0]
        loss = (F.binary_cross_entropy_with_logits(out[0], labels[idx])
                + F.cross_entropy(out[1], pec[idx], ignore_index=-100)
                + (F.cross_entropy(out[2], smorph[idx], ignore_index=-100) if (smorph[idx] >= 0).any() else 0)
                + (F.cross_entropy(out[3], fr[idx], ignore_index=-100) if (fr[idx] >= 0).any() else 0)
                + 2 * F.binary_cross_entropy_with_logits(out[4][:, :, 0], obj_target,
                                                         pos_weight=torch.tensor(10.0)))
        mask = obj_target > 0
        if mask.any():
            reg = (out[4][:, :, 1:] - dense[idx][:, :, 1:]).pow(2).sum(2)
            loss = loss + 2 * reg[mask].mean()
        return loss, out

    g = torch.Generator().manual_seed(recipe.seed + 1)
    model.train()
    start = time.perf_counter()
    for step in range(recipe.stage1_steps):
        idx = tr[torch.randint(len(tr), (recipe.stage1_batch,), generator=g)]
        loss, _ = losses(idx)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, recipe.stage1_steps // 10) == 0 or step == recipe.stage1_steps - 1:
            log(f"stage 1 step {step + 1}/{recipe.stage1_steps} loss {loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        loss, out = losses(val)
        exact = ((out[0] > 0) == (labels[val] > 0.5)).all(1).float().mean()
        pec_acc = (out[1].argmax(1) == pec[val]).float().mean()
    scores = {"val_loss": float(loss), "labels_exact_set": float(exact), "peculiarity_acc": float(pec_acc),
              "steps": recipe.stage1_steps, "seconds": round(time.perf_counter() - start, 1)}
    log(f"stage 1 done: {scores}")
    return model.tower.state_dict(), scores


def _cached_stage1(recipe: Recipe, work: Path, run):
    """Stage 1 depends on the data and the vision tower only: keep its result in the work folder,
    so that rerunning the recipe with other stage-2 settings does not train it again."""
    import torch

    key = {k: v for k, v in asdict(recipe).items() if k in ("seed", "n_images", "image_size", "patch_size",
                                                             "scenes", "vision_hidden", "vision_layers",
                                                             "vision_heads", "stage1_steps", "stage1_batch",
                                                             "stage1_lr", "val_fraction")}
    path = work / "stage1.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("key") == json.dumps(key, sort_keys=True):
            return saved["state"], saved["scores"]
    state, scores = run()
    torch.save({"key": json.dumps(key, sort_keys=True), "state": state, "scores": scores}, path)
    return state, scores


# ---------------------------------------------------------------------------- stage 2
def single_turn(data: Path, out: Path, seed: int, val_fraction: float, long_keep: float = 1.0,
                negative_box_keep: float = 1.0) -> tuple[Path, Path, list[str]]:
    """Every question of every image as its own record (short sequences train fast); corpus text.

    Questions with a long context (the B1, B2, B5 prompts: ~300 tokens against ~40 for the others)
    cost most of a CPU's time; only ``long_keep`` of them are kept. Most box questions of a cutout
    ask for a class it does not hold; only ``negative_box_keep`` of those negative answers are kept,
    so that the model sees boxes more often than refusals."""
    rng = random.Random(seed)
    records, corpus = [], []
    for path in sorted(data.glob("*.json")):
        if path.name.endswith(".meta.json") or path.name.startswith("single"):
            continue
        for rec in json.loads(path.read_text()):
            conv = rec["conversations"]
            for i in range(0, len(conv), 2):
                q = conv[i]["value"].replace("<image>\n", "")
                a = conv[i + 1]["value"]
                corpus += [q, a]
                if q.startswith("### Context") and rng.random() > long_keep:
                    continue
                if "bounding box" in q and not a.lstrip().startswith("[") and rng.random() > negative_box_keep:
                    continue
                records.append({"id": f"{rec['id']}-{i // 2}", "image": f"{path.stem}_images/" +
                                Path(rec["image"]).name,
                                "conversations": [{"from": "human", "value": "<image>\n" + q},
                                                  {"from": "gpt", "value": a}]})
    images = sorted({r["image"] for r in records})
    rng.shuffle(images)
    held = set(images[:max(1, int(len(images) * val_fraction))])
    train = [r for r in records if r["image"] not in held]
    val = [r for r in records if r["image"] in held][:400]
    rng.shuffle(train)
    (out / "single_train.json").write_text(json.dumps(train))
    (out / "single_val.json").write_text(json.dumps(val))
    return out / "single_train.json", out / "single_val.json", corpus


def run_recipe(name: str, out: str | Path, quick: bool = False, seed: int | None = None,
               work: str | Path | None = None, log=_log) -> Path:
    """The whole recipe; writes the model folder ``out`` (fp16 weights, profile, card)."""
    import torch

    from glue_radiollava.core.tiny import build_tiny, build_tokenizer

    from .finetune import load_config, train

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
    sims, data = make_data(recipe, work)
    log("data ready")
    train_json, val_json, corpus = single_turn(data, data, recipe.seed, recipe.val_fraction,
                                               recipe.long_prompt_keep, recipe.negative_box_keep)
    tokenizer = build_tokenizer(recipe.vocab_size, corpus=corpus)
    # an untrained model folder gives the exact image processor the final model uses
    scaffold = build_tiny(work / "scaffold", seed=recipe.seed, image_size=recipe.image_size,
                          patch_size=recipe.patch_size, hidden=recipe.vision_hidden, layers=recipe.vision_layers,
                          vision_heads=recipe.vision_heads, text_hidden=recipe.text_hidden,
                          text_layers=recipe.text_layers, text_heads=recipe.text_heads, tokenizer=tokenizer)
    from glue_radiollava.core.models import FAMILIES, load_processor

    processor = load_processor(scaffold, FAMILIES["llava_onevision"])
    vision_state, stage1 = _cached_stage1(recipe, work, lambda: train_vision(recipe, sims, data,
                                                                              processor.image_processor, log))
    base = build_tiny(work / "stage2-base", seed=recipe.seed, image_size=recipe.image_size,
                      patch_size=recipe.patch_size, hidden=recipe.vision_hidden, layers=recipe.vision_layers,
                      vision_heads=recipe.vision_heads, text_hidden=recipe.text_hidden,
                      text_layers=recipe.text_layers, text_heads=recipe.text_heads, tokenizer=tokenizer,
                      vision_state=vision_state)
    stage2_dir = work / "stage2"
    if stage2_dir.exists():
        shutil.rmtree(stage2_dir)
    config = load_config(None, dict(
        base=str(base), data=str(train_json), val_data=str(val_json), out=str(stage2_dir), method="full",
        freeze_vision=True, max_steps=recipe.stage2_steps, per_device_batch_size=recipe.stage2_batch,
        gradient_accumulation_steps=1, learning_rate=recipe.stage2_lr, lr_scheduler="cosine", warmup_ratio=0.03,
        weight_decay=0.0, gradient_checkpointing=False, logging_steps=max(1, recipe.stage2_steps // 50),
        eval_steps=max(1, recipe.stage2_steps // 5), save_steps=max(1, recipe.stage2_steps // 5),
        save_total_limit=1, seed=recipe.seed, bf16="false", group_by_length=True))
    log(f"stage 2: {len(json.loads(train_json.read_text()))} single-turn records")
    train(config)
    card = json.loads((stage2_dir / "training_card.json").read_text())
    _ship(stage2_dir, out, recipe, name, quick, stage1, card, time.perf_counter() - started)
    log(f"wrote {out} in {(time.perf_counter() - started) / 60:.1f} min")
    return out


def _ship(stage2: Path, out: Path, recipe: Recipe, name: str, quick: bool, stage1: dict, card: dict,
          seconds: float) -> None:
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
