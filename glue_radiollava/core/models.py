"""Model specs and loading: a local folder, a hub id (network permitting) or the embedded ``nano``.

The family (llava_onevision, llava_next, llava, qwen2_vl, qwen2_5_vl) is read from the folder's
``config.json``; it decides the processor and the box convention. Without torchvision (CPU torch
here), processors that declare a video processor raise ImportError in ``AutoProcessor``; the
image-only subclass below loads the same folder and keeps the image-token expansion.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RadioLlavaError
from .profiles import Profile, load_profile


@dataclass(frozen=True)
class Family:
    name: str
    box_convention: str        # yolo | qwen | pixels
    processor: str             # transformers processor class name
    module: str                # transformers module that holds it
    skip_quantize: tuple[str, ...]  # modules kept in full precision under bitsandbytes


FAMILIES: dict[str, Family] = {
    f.name: f for f in [
        Family("llava_onevision", "yolo", "LlavaOnevisionProcessor", "llava_onevision",
               ("model.vision_tower", "model.multi_modal_projector", "lm_head")),
        Family("llava_next", "yolo", "LlavaNextProcessor", "llava_next",
               ("model.vision_tower", "model.multi_modal_projector", "lm_head")),
        Family("llava", "yolo", "LlavaProcessor", "llava",
               ("model.vision_tower", "model.multi_modal_projector", "lm_head")),
        Family("qwen2_vl", "qwen", "Qwen2VLProcessor", "qwen2_vl", ("model.visual", "lm_head")),
        Family("qwen2_5_vl", "qwen", "Qwen2_5_VLProcessor", "qwen2_5_vl", ("model.visual", "lm_head")),
    ]
}

NANO = "nano"


def resources_dir() -> Path:
    try:
        from importlib.resources import files

        return Path(str(files("glue_radiollava.resources")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "resources"


@dataclass(frozen=True)
class ModelSpec:
    """What to load: ``model`` is ``nano``, a local folder or a hub id ("org/name")."""

    model: str = NANO
    adapter: str | None = None
    quantize: str | None = None      # None | "4bit" | "8bit"
    dtype: str | None = None         # None (auto: bf16 on CUDA, fp32 on CPU) | bf16 | fp16 | fp32
    device: str | None = None        # None (auto) | cpu | cuda | cuda:1 | mps

    def describe(self) -> str:
        extra = [f"adapter={self.adapter}"] if self.adapter else []
        extra += [f"quantize={self.quantize}"] if self.quantize else []
        return self.model + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class LoadedModel:
    spec: ModelSpec
    folder: Path
    family: Family
    model: object
    processor: object
    profile: Profile
    device: str
    dtype: str
    load_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    _sha256: str | None = None

    @property
    def box_convention(self) -> str:
        return self.family.box_convention

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = weights_sha256(self.folder)
        return self._sha256

    def provenance(self) -> dict:
        return {"spec": self.spec.model, "folder": str(self.folder), "family": self.family.name,
                "sha256": self.sha256, "adapter": self.spec.adapter, "quantize": self.spec.quantize,
                "dtype": self.dtype, "device": self.device}


def quiet_transformers() -> None:
    """Command-line use: transformers' warnings and progress bars off (our own output stays)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# ------------------------------------------------------------------ locating a model
def resolve_model_folder(name: str) -> Path:
    """``nano`` → the embedded model; a folder → itself; "org/name" → the local hub cache or a download."""
    if name == NANO:
        folder = resources_dir() / "models" / "nano"
        if not (folder / "config.json").is_file():
            raise RadioLlavaError(
                "the embedded model 'nano' is not in this install yet (resources/models/nano); "
                "build a tiny test model with `radiollava model tiny DIR` and pass --model DIR")
        return folder
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise RadioLlavaError(f"model {name}: not a folder; give a model folder with config.json")
        return path
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return _from_hub(name)
    raise RadioLlavaError(f"model {name!r}: no such folder; give 'nano', a model folder or a hub id")


def hub_offline() -> bool:
    """True when the user switched the Hugging Face hub off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _from_hub(repo: str) -> Path:
    """A hub id: the local cache first; a download only when the network is allowed."""
    hint = (f"download it where there is internet (`hf download {repo} --local-dir DIR`), "
            "copy DIR here and pass --model DIR")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RadioLlavaError(f"model {repo!r} is not a local folder; {hint}") from None
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:
        pass
    if hub_offline():
        raise RadioLlavaError(f"model {repo!r} is not cached and HF_HUB_OFFLINE is set; {hint}")
    try:
        return Path(snapshot_download(repo))  # the user named a hub id: an explicit choice to download
    except Exception as exc:
        raise RadioLlavaError(f"cannot download model {repo!r} ({type(exc).__name__}); {hint}") from None


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise RadioLlavaError(f"{folder} is not a model folder (no config.json); "
                              "give a Hugging Face model folder, 'nano' or a hub id")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{path}: unreadable ({exc})") from None


def detect_family(folder: Path, config: dict | None = None) -> Family:
    config = config if config is not None else read_config(folder)
    if "mm_vision_tower" in config or "mm_projector_type" in config:
        raise RadioLlavaError(
            f"{folder} is a LLaVA-NeXT training checkpoint, not a transformers model; convert it "
            f"with `radiollava model convert {folder} {folder}-hf` and load {folder}-hf")
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise RadioLlavaError(f"{folder}: model type {model_type!r} is not supported; "
                              f"supported: {', '.join(FAMILIES)}")
    return FAMILIES[model_type]


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the weight files (sorted by name), streamed; cached per file size and mtime."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file())
    key = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    if key in _SHA_CACHE:
        return _SHA_CACHE[key]
    h = hashlib.sha256()
    for p in files:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


_SHA_CACHE: dict[str, str] = {}


# ------------------------------------------------------------------ processors
def image_only_processor_class(family: str):
    """The family's processor without its video processor (which needs torchvision).

    ``ProcessorMixin`` reads its sub-processors from ``__init__``'s signature, so a subclass whose
    ``__init__`` names only ``image_processor`` and ``tokenizer`` (plus options) works without one.
    """
    import importlib

    fam = FAMILIES[family]
    module = importlib.import_module(f"transformers.models.{fam.module}.processing_{fam.module}")
    base = getattr(module, fam.processor)

    def __init__(self, image_processor=None, tokenizer=None, **options):
        base.__init__(self, image_processor=image_processor, tokenizer=tokenizer, **options)

    def to_dict(self):  # save the options too (the base reads them from its own signature)
        out = base.to_dict(self)
        for name in _processor_options(base):
            if hasattr(self, name) and name not in out:
                out[name] = getattr(self, name)
        return out

    return type(fam.processor, (base,), {"__init__": __init__, "to_dict": to_dict, "__module__": __name__})


def _processor_options(base) -> list[str]:
    import inspect

    skip = {"self", "image_processor", "tokenizer", "video_processor", "chat_template", "kwargs"}
    return [n for n in inspect.signature(base.__init__).parameters if n not in skip]


def load_processor(folder: Path, family: Family):
    """AutoProcessor; without torchvision, the image-only processor assembled from the folder's parts."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(folder)
    except (ImportError, OSError, ValueError, TypeError):
        pass  # the video processor needs torchvision; assemble the image-only processor
    cls = image_only_processor_class(family.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        image_processor = AutoImageProcessor.from_pretrained(folder)
    except Exception as exc:
        raise RadioLlavaError(f"{folder}: cannot load its tokenizer or image processor "
                              f"({str(exc).splitlines()[0][:200]})") from None
    options = {}
    config = folder / "processor_config.json"
    if config.is_file():
        saved = json.loads(config.read_text())
        options = {k: v for k, v in saved.items() if k in _processor_options(cls.__mro__[1])}
    template = folder / "chat_template.jinja"
    chat_template = template.read_text() if template.is_file() else getattr(tokenizer, "chat_template", None)
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **options)


# ------------------------------------------------------------------ loading
def _choose_device_dtype(spec: ModelSpec) -> tuple[str, str]:
    import torch

    device = spec.device
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RadioLlavaError(f"device {device!r} asked for, but this torch sees no CUDA GPU; use --device cpu")
    dtype = spec.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    if dtype not in ("bf16", "fp16", "fp32"):
        raise RadioLlavaError(f"dtype {dtype!r}: use bf16, fp16 or fp32")
    return device, dtype


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def quantization_config(spec: ModelSpec, family: Family, dtype: str):
    if spec.quantize in (None, "", "none"):
        return None
    if spec.quantize not in ("4bit", "8bit"):
        raise RadioLlavaError(f"quantization {spec.quantize!r}: use 4bit or 8bit")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RadioLlavaError(f"--quantize {spec.quantize} needs bitsandbytes: `pip install bitsandbytes`, "
                              "or load without --quantize") from None
    from transformers import BitsAndBytesConfig

    skip = list(family.skip_quantize)
    if spec.quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=torch_dtype(dtype),
                                  llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def load_model(spec: ModelSpec | str = NANO) -> LoadedModel:
    """Load a model (and adapter) as ``spec`` says; every failure is a one-line RadioLlavaError."""
    spec = ModelSpec(spec) if isinstance(spec, str) else spec
    start = time.perf_counter()
    folder = resolve_model_folder(spec.model)
    if not (folder / "config.json").is_file() and (folder / "adapter_config.json").is_file():
        spec = _adapter_folder_spec(spec, folder)   # a LoRA run's output: base + this adapter
        folder = resolve_model_folder(spec.model)
    config = read_config(folder)
    family = detect_family(folder, config)
    device, dtype = _choose_device_dtype(spec)
    quant = quantization_config(spec, family, dtype)

    from transformers import AutoModelForImageTextToText

    kwargs = {"dtype": torch_dtype(dtype)}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device}
    try:
        from safetensors import SafetensorError
    except ImportError:                   # older safetensors: its error is an OSError or ValueError
        SafetensorError = OSError
    try:
        model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RadioLlavaError(f"{folder}: cannot load the model weights ({first}); the weight files may be "
                              "truncated or corrupt: copy them again") from None
    if any(p.is_meta for p in model.parameters()):
        _tie_lm_head(model)  # a tied LM head saved without its own tensor can be left on "meta"
        missing = [n for n, p in model.named_parameters() if p.is_meta]
        if missing:
            raise RadioLlavaError(f"{folder}: the weights lack {missing[0]} (and {len(missing) - 1} more); "
                                  "the model folder is incomplete")
    if quant is None:
        model = model.to(device)
    warnings = []
    if spec.adapter:
        model = _attach_adapter(model, spec.adapter, folder)
    model.eval()
    processor = load_processor(folder, family)
    profile = load_profile(spec.adapter if spec.adapter and (Path(spec.adapter) / "preprocessing.json").is_file()
                           else folder)
    return LoadedModel(spec, folder, family, model, processor, profile, device, dtype,
                       load_s=time.perf_counter() - start, warnings=warnings)


def _tie_lm_head(model) -> None:
    """Share the input embeddings with an LM head left on "meta", when the config says they are tied.

    transformers' own ``tie_weights`` does not always reach the head of a composite model (seen to
    depend on the run), so the head is tied here explicitly as well.
    """
    model.tie_weights()
    config = model.config
    tied = getattr(config, "tie_word_embeddings", False) or getattr(
        getattr(config, "text_config", None), "tie_word_embeddings", False)
    head = model.get_output_embeddings()
    if tied and head is not None and head.weight.is_meta:
        head.weight = model.get_input_embeddings().weight


def _adapter_folder_spec(spec: ModelSpec, folder: Path) -> ModelSpec:
    from dataclasses import replace

    if spec.adapter:
        raise RadioLlavaError(f"{folder} is itself a LoRA adapter; give it as --model or --adapter, not both")
    try:
        base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise RadioLlavaError(f"{folder}/adapter_config.json: unreadable ({exc})") from None
    if not base:
        raise RadioLlavaError(f"{folder} is a LoRA adapter without its base model's name; "
                              "pass --model BASE --adapter " + str(folder))
    if not Path(base).is_dir() and base != NANO and base.count("/") != 1:
        raise RadioLlavaError(f"{folder} is a LoRA adapter on {base}, which is not here; "
                              f"pass --model BASE_FOLDER --adapter {folder}")
    return replace(spec, model=base, adapter=str(folder))


def _attach_adapter(model, adapter: str, base_folder: Path):
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise RadioLlavaError(f"adapter {adapter}: no adapter_config.json there; give a peft LoRA folder")
    if (path / "non_lora_trainables.bin").is_file():
        raise RadioLlavaError(f"adapter {adapter} was trained with LLaVA-NeXT; convert it with "
                              f"`radiollava model convert {adapter} {adapter}-hf` and pass --adapter {adapter}-hf")
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(path))
    except (ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise RadioLlavaError(f"adapter {adapter} does not fit the model {base_folder} ({first}); "
                              "use the base model the adapter was trained on") from None
