"""Fine-tuning: full, LoRA and QLoRA on LLaVA conversation datasets, with the Hugging Face Trainer.

The Trainer (accelerate underneath) gives data parallelism with ``accelerate launch`` (DDP or FSDP,
one or several nodes), gradient accumulation, checkpoints and resume; nothing here distributes by
hand. Pictures come from the dataset builders, rendered with the core's preprocessing profile;
the run refuses a dataset rendered with another profile than the model's, and FITS images are
rendered on the fly with the model's profile (the assistant's own code path).

Loss masking: everything except the assistant's answers (and their end-of-turn token) is -100:
system and user turns, image tokens, padding.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from glue_radiollava.core.chat import chat_messages
from glue_radiollava.core.errors import RadioLlavaError

# the LLM's projections (language_model; Idefics3/SmolVLM: text_model) and the vision-to-text projector
LORA_TARGETS = (r".*(language_model|text_model).*\.(q|k|v|o|gate|up|down)_proj"
                r"|.*(multi_modal_projector\.linear_[12]|connector\.modality_projection\.proj)")
CARD_FILE = "training_card.json"
LOSS_CSV = "loss.csv"
LOSS_PNG = "loss.png"


@dataclass
class TrainConfig:
    """Every option of a run; defaults are the paper's (section 3.2)."""

    base: str = "nano"                 # model spec: nano, a folder, or a hub id
    data: str = ""                     # LLaVA conversation JSON (training split)
    val_data: str | None = None        # LLaVA JSON for the periodic validation loss
    out: str = "runs/finetune"
    method: str = "lora"               # full | lora | qlora
    epochs: float = 1.0                # 1 "shallow", 3 "deep"
    max_steps: int = -1                # > 0 overrides epochs
    learning_rate: float = 1e-5
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 2
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03        # fraction of the steps (transformers 5: warmup_steps < 1)
    weight_decay: float = 0.0
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: str = LORA_TARGETS   # the LLM and the projector only
    freeze_vision: bool = True
    gradient_checkpointing: bool = True
    bf16: str = "auto"                 # auto (on CUDA) | true | false
    eval_steps: int = 100
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    max_length: int = 4096
    seed: int = 0
    merge: bool = False                # LoRA: also merge the adapter into the base (a plain model folder)
    resume: bool = False               # continue from the last checkpoint in ``out``
    device: str | None = None          # None: what the Trainer/accelerate chooses
    num_workers: int = 0
    group_by_length: bool = False      # batches of similar length (less padding, faster on CPU)

    def check(self) -> None:
        if self.method not in ("full", "lora", "qlora"):
            raise RadioLlavaError(f"method {self.method!r}: use full, lora or qlora")
        if not self.data:
            raise RadioLlavaError("no training data: set data: FILE.json (a LLaVA conversation dataset)")
        for name in ("learning_rate", "per_device_batch_size", "gradient_accumulation_steps", "lora_r"):
            if getattr(self, name) <= 0:
                raise RadioLlavaError(f"{name} must be positive (got {getattr(self, name)})")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise RadioLlavaError("set epochs > 0 or max_steps > 0")
        if str(self.bf16).lower() not in ("auto", "true", "false"):
            raise RadioLlavaError(f"bf16 {self.bf16!r}: use auto, true or false")


def _coerce(name: str, value, kind: str):
    """A YAML or command-line value → the field's type (``kind`` is its annotation), or a one-line error."""
    import yaml

    if isinstance(value, str) and not kind.startswith("str"):
        value = yaml.safe_load(value)          # "3e-4" → 0.0003, "true" → True, "none" stays a str
    if value is None and "None" in kind:
        return None
    try:
        if kind.startswith("bool"):
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise RadioLlavaError(f"config key {name!r}: {value!r} is not a valid {kind}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """A YAML config file plus ``key=value`` overrides → TrainConfig; unknown keys are refused."""
    import yaml

    values: dict = {}
    if path:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RadioLlavaError(f"{path}: cannot read the config ({exc})") from None
        if not isinstance(values, dict):
            raise RadioLlavaError(f"{path}: a config is a YAML mapping of options")
    if isinstance(overrides, dict):
        values.update(overrides)
    else:
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise RadioLlavaError(f"override {item!r}: write key=value (e.g. method=full)")
            values[key.strip().replace("-", "_")] = value
    known = {f.name: f.type for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RadioLlavaError(f"config key {unknown[0]!r} does not exist; known keys: {', '.join(known)}")
    config = TrainConfig(**{k: _coerce(k, v, known[k]) for k, v in values.items()})
    config.check()
    return config


# ---------------------------------------------------------------------------- data
@dataclass
class TrainingExample:
    id: str
    picture: object        # PIL RGB picture
    turns: list            # [(question, answer), ...]


def _picture(path: Path, profile):
    """A builder's PNG as is; a FITS image rendered whole with the model's profile."""
    from PIL import Image

    if path.suffix.lower() in (".fits", ".fit", ".fts"):
        from glue_radiollava.core.image import RadioImage
        from glue_radiollava.core.profiles import render

        image = RadioImage.open(path)
        ny, nx = image.shape
        return render(image.cutout_pixels(0, 0, nx, ny), profile).picture
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as exc:
        raise RadioLlavaError(f"{path}: cannot read the picture ({exc})") from None


def check_dataset_profile(path: Path, profile) -> None:
    """Builders write OUT.meta.json with the profile they rendered with; it must be the model's."""
    stem = path.name[:-len(".json")] if path.name.endswith(".json") else path.stem
    for split in ("_train", "_val", "_test"):       # FILE_train.json comes with FILE.meta.json
        if stem.endswith(split):
            stem = stem[:-len(split)]
    meta = path.with_name(stem + ".meta.json")
    if not meta.is_file():
        return
    try:
        used = json.loads(meta.read_text()).get("profile")
    except (OSError, ValueError):
        return
    if used and used != profile.to_dict():
        raise RadioLlavaError(
            f"{path}: its pictures were rendered with profile {used.get('name')!r} v{used.get('version')}, "
            f"but the model uses {profile.name!r} v{profile.version}; rebuild the dataset with "
            f"`radiollava dataset build ... --profile {profile.name}`")


def read_examples(path: str | Path, profile, check_images: bool = True) -> list[TrainingExample]:
    """Read and check a LLaVA JSON before any training starts (every problem named by record id)."""
    from .llava_format import IMAGE_TOKEN, load_records, record_problems

    path = Path(path)
    records = load_records(path)
    if not records:
        raise RadioLlavaError(f"{path}: the dataset is empty")
    folder = path.parent
    problems = []
    for i, rec in enumerate(records):
        rid = rec.get("id", f"#{i}") if isinstance(rec, dict) else f"#{i}"
        problems += [f"{rid}: {p}" for p in record_problems(rec, folder if check_images else None)]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RadioLlavaError(f"{path}: record {problems[0]}{more}; fix or rebuild the dataset")
    check_dataset_profile(path, profile)
    examples = []
    for rec in records:
        conv = rec["conversations"]
        turns = [(conv[i]["value"].replace(IMAGE_TOKEN + "\n", "", 1) if i == 0 else conv[i]["value"],
                  conv[i + 1]["value"]) for i in range(0, len(conv), 2)]
        examples.append(TrainingExample(rec["id"], folder / rec["image"], turns))
    return examples


class ConversationDataset:
    """Examples with pictures loaded lazily (a torch map-style dataset)."""

    def __init__(self, examples: list[TrainingExample], profile):
        self.examples = examples
        self.profile = profile

    def __len__(self):
        return len(self.examples)

    @property
    def lengths(self) -> list[int]:
        """A cheap proxy of each example's token count (its characters), for length grouping."""
        return [sum(len(q) + len(a) for q, a in ex.turns) for ex in self.examples]

    def __getitem__(self, i):
        ex = self.examples[i]
        picture = ex.picture if not isinstance(ex.picture, Path) else _picture(ex.picture, self.profile)
        return {"id": ex.id, "picture": picture, "turns": ex.turns}


class Collator:
    """Batch → processor inputs with labels: only the assistant's answers are learned.

    Chat families: the conversation through the chat template, labels after each assistant header.
    Families that are not chat models (``Family.chat`` False: Florence-2, PaliGemma) take one task
    prompt per picture, so each turn is its own row: PaliGemma's answer is the processor's
    ``suffix``; an encoder–decoder's (Florence-2) goes to the decoder after ``decoder_prefix``.
    """

    def __init__(self, processor, system_prompt: str | None, max_length: int, family=None,
                 decoder_prefix: list[int] | None = None):
        self.processor = processor
        self.system_prompt = system_prompt
        self.max_length = max_length
        self.family = family
        self.decoder_prefix = decoder_prefix
        tok = processor.tokenizer
        self.end_id = tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.end_id
        if family is not None and not family.chat:
            return
        probe = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
        with_prompt = processor.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        without = processor.apply_chat_template(probe, tokenize=False, add_generation_prompt=False)
        header = with_prompt[len(without):]
        if not header:
            raise RadioLlavaError("the model's chat template has no assistant prefix; cannot mask user turns")
        self.header_ids = tok.encode(header, add_special_tokens=False)

    def __call__(self, batch):
        import torch

        if self.family is not None and not self.family.chat:
            return self._task_rows(batch)
        texts = [self.processor.apply_chat_template(chat_messages(self.system_prompt, b["turns"]), tokenize=False)
                 for b in batch]
        tok = self.processor.tokenizer
        side = tok.padding_side
        tok.padding_side = "right"
        try:
            nested = getattr(self.family, "nested_images", False)     # SmolVLM: one list per prompt
            inputs = self.processor(images=[[b["picture"]] if nested else b["picture"] for b in batch], text=texts,
                                    padding=True, return_tensors="pt")
        finally:
            tok.padding_side = side
        ids = inputs["input_ids"]
        self._check_length(ids, batch)
        labels = torch.full_like(ids, -100)
        for row in range(ids.shape[0]):
            labels[row] = self._answer_labels(ids[row])
        inputs["labels"] = labels
        return dict(inputs)

    def _check_length(self, ids, batch) -> None:
        if ids.shape[1] > self.max_length:
            raise RadioLlavaError(f"record {batch[0]['id']}: {ids.shape[1]} tokens exceed max_length "
                                  f"{self.max_length}; raise max_length or shorten the conversation")

    def _task_rows(self, batch):
        """One row per (question, answer) turn, with its picture, for families that are not chat models."""
        import torch

        tok = self.processor.tokenizer
        prefix = getattr(self.processor, "image_token", "") if self.family.image_in_prompt else ""
        rows = [(b["picture"], prefix + q, a) for b in batch for q, a in b["turns"]]
        pictures, prompts, answers = zip(*rows)
        side = tok.padding_side
        tok.padding_side = "right"
        try:
            if self.decoder_prefix is None:        # decoder-only (PaliGemma): the answer is the suffix
                inputs = self.processor(images=list(pictures), text=list(prompts), suffix=list(answers),
                                        padding=True, return_tensors="pt")
            else:
                inputs = self.processor(images=list(pictures), text=list(prompts), padding=True,
                                        return_tensors="pt")
        finally:
            tok.padding_side = side
        inputs = dict(inputs)
        self._check_length(inputs["input_ids"], batch)
        if self.decoder_prefix is None:
            inputs["labels"][inputs["attention_mask"] == 0] = -100
            return inputs
        # encoder–decoder: decoder inputs = prefix + answer, labels = the answer and its end token
        prefix_ids = list(self.decoder_prefix)
        answer_ids = [tok.encode(a, add_special_tokens=False) + [self.end_id] for a in answers]
        width = len(prefix_ids) - 1 + max(len(a) for a in answer_ids)
        decoder = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, a in enumerate(answer_ids):
            row = (prefix_ids + a)[:-1]
            decoder[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
            labels[r, len(prefix_ids) - 1:len(row)] = torch.tensor(a)
        inputs.update(decoder_input_ids=decoder, decoder_attention_mask=mask, labels=labels)
        return inputs

    def _answer_labels(self, ids):
        """-100 everywhere except after each assistant header, up to and including its end token."""
        import torch

        seq = ids.tolist()
        out = torch.full_like(ids, -100)
        h = len(self.header_ids)
        i = 0
        while i <= len(seq) - h:
            if seq[i:i + h] == self.header_ids:
                j = i + h
                while j < len(seq) and seq[j] != self.end_id:
                    j += 1
                end = min(j + 1, len(seq))
                out[i + h:end] = ids[i + h:end]
                i = end
            else:
                i += 1
        return out


# ---------------------------------------------------------------------------- model
def _bf16(config: TrainConfig) -> bool:
    import torch

    flag = str(config.bf16).lower()
    if flag == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return flag == "true"


def prepare_model(config: TrainConfig):
    """Load the base (4-bit for qlora) and set what trains: LLM + projector (LoRA or full)."""
    import torch

    from glue_radiollava.core.models import (ModelSpec, load_processor, quantization_config, read_config,
                                             detect_family, resolve_model_folder, torch_dtype)

    folder = resolve_model_folder(config.base)
    family = detect_family(folder, read_config(folder))
    quant = None
    dtype = "bf16" if _bf16(config) else "fp32"
    if config.method == "qlora":
        quant = quantization_config(ModelSpec(config.base, quantize="4bit"), family, dtype)
    from transformers import AutoModelForImageTextToText

    kwargs = {"dtype": torch_dtype(dtype)}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0 if torch.cuda.is_available() else "cpu"}
    try:
        model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise RadioLlavaError(f"{folder}: cannot load the base model ({str(exc).splitlines()[0][:200]})") from None
    processor = load_processor(folder, family)
    vision = _vision_module(model)
    if config.method == "full":
        for p in model.parameters():
            p.requires_grad = True
        if config.freeze_vision and vision is not None:
            for p in vision.parameters():
                p.requires_grad = False
    else:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.method == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=config.lora_targets,
                          task_type="SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:
            raise RadioLlavaError(f"LoRA targets {config.lora_targets!r} match nothing in {folder} ({exc})") from None
        if not config.freeze_vision and vision is not None:
            for p in _vision_module(model).parameters():
                p.requires_grad = True
    if config.gradient_checkpointing:
        model.config.use_cache = False
    return model, processor, folder


def _vision_module(model):
    for name in ("vision_tower", "visual", "vision_model"):
        for module_name, module in model.named_modules():
            if module_name.endswith(name) and not module_name.endswith("." + name + "." + name):
                return module
    return None


def trainable_summary(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable": trainable}


# ---------------------------------------------------------------------------- callbacks
def _loss_callback(out: Path):
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        """Append every logged loss to loss.csv (main process only)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "epoch": round(state.epoch or 0, 4),
                   "loss": logs.get("loss", ""), "eval_loss": logs.get("eval_loss", ""),
                   "learning_rate": logs.get("learning_rate", "")}
            if row["loss"] == "" and row["eval_loss"] == "":
                return
            path = out / LOSS_CSV
            new = not path.exists()
            with open(path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)

    return LossLog()


def plot_losses(out: Path) -> Path | None:
    path = out / LOSS_CSV
    if not path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(path)))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, style in (("loss", "-"), ("eval_loss", "o-")):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]
        if pts:
            ax.plot(*zip(*pts), style, label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / LOSS_PNG, dpi=100)
    plt.close(fig)
    return out / LOSS_PNG


# ---------------------------------------------------------------------------- run
def train(config: TrainConfig) -> Path:
    """Run a fine-tuning; returns the output folder (a model the core loads as is)."""
    import torch
    from transformers import Trainer, TrainingArguments
    from glue_radiollava.core.assistant import SYSTEM_PROMPT
    from glue_radiollava.core.models import decoder_prefix, detect_family, read_config, resolve_model_folder
    from glue_radiollava.core.profiles import load_profile

    config.check()
    out = Path(config.out)
    base_folder = resolve_model_folder(config.base)
    profile = load_profile(base_folder)
    family = detect_family(base_folder, read_config(base_folder))
    # every check that can be made before the run is made before the run
    train_examples = read_examples(config.data, profile)
    val_examples = read_examples(config.val_data, profile) if config.val_data else None
    checkpoint = None
    if out.exists() and any(out.iterdir()):
        checkpoints = out / "checkpoints"
        checkpoint, torn = last_complete_checkpoint(checkpoints, set_aside=config.resume)
        for path in torn if config.resume else []:
            print(f"radiollava: {path.name} was not completely written (interrupted while saving); set aside as "
                  f"{path.parent / ('incomplete-' + path.name)}", file=sys.stderr)
        if config.resume and checkpoint is None:
            raise RadioLlavaError(f"{out}: no checkpoint to resume from; start without resume=true")
        if not config.resume and (checkpoint is not None or (out / "config.json").exists()
                                  or (out / "adapter_config.json").exists()):
            raise RadioLlavaError(f"{out} already holds a run; continue it with resume=true or choose another out")
    elif config.resume:
        raise RadioLlavaError(f"{out}: nothing to resume")
    if config.method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise RadioLlavaError("method qlora needs bitsandbytes: `pip install bitsandbytes`, "
                                  "or use method lora") from None

    model, processor, _ = prepare_model(config)
    out.mkdir(parents=True, exist_ok=True)
    prefix = decoder_prefix(model) if model.config.is_encoder_decoder else None
    collator = Collator(processor, SYSTEM_PROMPT, config.max_length, family, prefix)
    train_set = ConversationDataset(train_examples, profile)
    val_set = ConversationDataset(val_examples, profile) if val_examples else None
    use_cpu = config.device == "cpu" or not torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay, logging_steps=config.logging_steps,
        eval_strategy="steps" if val_set is not None else "no", eval_steps=config.eval_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        bf16=_bf16(config), gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        remove_unused_columns=False, report_to=[], seed=config.seed, data_seed=config.seed,
        dataloader_num_workers=config.num_workers, use_cpu=use_cpu, logging_first_step=True,
        disable_tqdm=False)
    trainer_class = _length_grouped_trainer() if config.group_by_length else Trainer
    trainer = trainer_class(model=model, args=args, train_dataset=train_set, eval_dataset=val_set,
                            data_collator=collator, callbacks=[_loss_callback(out)])
    started = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint if config.resume else None)
    except torch.cuda.OutOfMemoryError:
        raise RadioLlavaError(_resume_hint(out, "out of GPU memory; lower per_device_batch_size or use "
                                                "method=qlora / gradient_checkpointing=true")) from None
    except KeyboardInterrupt:
        print(f"radiollava: {_resume_hint(out, 'interrupted', config.save_steps)}", file=sys.stderr)
        raise
    final_eval = trainer.evaluate() if val_set is not None else {}
    if trainer.is_world_process_zero():
        _save_model(trainer, config, processor, base_folder, out)
        plot_losses(out)
        card = {"base": str(config.base), "base_folder": str(base_folder), "data": str(config.data),
                "val_data": config.val_data, "method": config.method, "hyperparameters": asdict(config),
                "train_loss": result.training_loss, "final_eval_loss": final_eval.get("eval_loss"),
                "steps": result.global_step, "examples": len(train_set), **trainable_summary(model),
                "minutes": round((time.time() - started) / 60, 2), "profile": profile.to_dict()}
        (out / CARD_FILE).write_text(json.dumps(card, indent=1, default=str) + "\n")
    return out


def _length_grouped_trainer():
    """A Trainer whose training batches group examples of similar length (our datasets are not
    ``datasets.Dataset``, so the Trainer cannot find their lengths itself)."""
    import torch
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class LengthGroupedTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            generator = torch.Generator().manual_seed(self.args.seed)
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=dataset.lengths, generator=generator)

    return LengthGroupedTrainer


def last_complete_checkpoint(folder: Path, set_aside: bool = False) -> tuple[str | None, list[Path]]:
    """The newest ``checkpoint-N`` in ``folder`` that was written completely (the Trainer writes
    trainer_state.json last, after the weights), and the newer, torn ones. With ``set_aside`` the
    torn ones are renamed ``incomplete-checkpoint-N`` (kept, but out of the Trainer's way)."""
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_dir() and path.name.startswith("checkpoint-") and path.name[11:].isdigit():
                found.append((int(path.name[11:]), path))
    torn = []
    for _, path in sorted(found, reverse=True):
        weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
        if (path / "trainer_state.json").is_file() and weights:
            break
        torn.append(path)
    else:
        path = None
    if set_aside:
        for t in torn:
            t.rename(t.parent / f"incomplete-{t.name}")
    return (str(path) if path else None), torn


def _resume_hint(out: Path, what: str, save_steps: int | None = None) -> str:
    last, _ = last_complete_checkpoint(out / "checkpoints")
    if last:
        return f"{what}; the last checkpoint is {last}: rerun the same command with resume=true"
    return f"{what}; no checkpoint was saved yet (one is written every save_steps={save_steps} steps)"


def _save_model(trainer, config: TrainConfig, processor, base_folder: Path, out: Path) -> None:
    """The output folder loads as is: full weights, or base + adapter (and merged when asked)."""
    from glue_radiollava.core.profiles import PROFILE_FILE

    model = trainer.model
    if config.method == "full":
        model.save_pretrained(out)
    else:
        model.save_pretrained(out)               # adapter_config.json + adapter weights
        cfg_path = out / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = str(base_folder.resolve())
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        if config.merge:
            if config.method == "qlora":
                raise RadioLlavaError("a 4-bit base cannot be merged in place; run `radiollava merge adapter "
                                      f"--adapter {out} --out {out}-merged` (it reloads the base in full precision)")
            merged_dir = out / "merged"
            model.merge_and_unload().save_pretrained(merged_dir)
            processor.save_pretrained(merged_dir)
            shutil.copy(base_folder / PROFILE_FILE, merged_dir / PROFILE_FILE) \
                if (base_folder / PROFILE_FILE).is_file() else None
    processor.save_pretrained(out)
    if (base_folder / PROFILE_FILE).is_file():
        shutil.copy(base_folder / PROFILE_FILE, out / PROFILE_FILE)
    for name in ("chat_template.jinja",):
        if (base_folder / name).is_file() and not (out / name).exists():
            shutil.copy(base_folder / name, out / name)
