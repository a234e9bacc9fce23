"""Model specs and loading: a local folder, a hub id (network permitting) or the embedded ``nano``.

The family (``FAMILIES``: LLaVA, LLaVA-NeXT, LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL, Qwen3-VL,
InternVL3 -hf, Florence-2, PaliGemma, Idefics3, SmolVLM) is read from the folder's ``config.json``;
it decides the processor, the task phrasing and the box convention. Without torchvision (CPU torch
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
    """One model family: how transformers loads it, how it is prompted, how its boxes read.

    This table is the ONE place that says which box convention a family answers in
    (``parsing.BOX_CONVENTIONS`` describes each convention) and which phrasing of a task it gets
    (``tasks.Task.prompt_for``).
    """

    name: str                  # config.json model_type
    box_convention: str        # a key of parsing.BOX_CONVENTIONS
    processor: str             # transformers processor class name
    module: str                # transformers module that holds it
    skip_quantize: tuple[str, ...]  # modules kept in full precision under bitsandbytes
    model_class: str = ""      # transformers model class (AutoModelForImageTextToText picks it)
    title: str = ""            # for people
    phrasing: str = "radio-llava"   # which phrasing of a task this family was trained to answer
    resize: str = "fixed"      # how its processor sizes the picture: fixed | smart (Qwen) | tiles
    chat: bool = True          # prompts go through the chat template (False: raw task prompts)
    keep_tokens: str = ""      # regex: special tokens kept in decoded answers (grounding markup)
    grounds: bool = True       # False: no boxes; questions and closed-set scores only
    remote_code: bool = False  # loaded with trust_remote_code (its own Python code runs): --trust-remote-code
    image_in_prompt: bool = False   # raw (non-chat) prompts start with the processor's image token (PaliGemma)
    nested_images: bool = False     # a batch's pictures go to the processor as one list per prompt (Idefics3)


_LLAVA_SKIP = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
_QWEN_SKIP = ("model.visual", "lm_head")
_QWEN2_TOKENS = r"<\|(?:object_ref|box|quad)_(?:start|end)\|>"

FAMILIES: dict[str, Family] = {
    f.name: f for f in [
        Family("llava_onevision", "yolo", "LlavaOnevisionProcessor", "llava_onevision", _LLAVA_SKIP,
               "LlavaOnevisionForConditionalGeneration", "LLaVA-OneVision", resize="tiles"),
        Family("llava_next", "yolo", "LlavaNextProcessor", "llava_next", _LLAVA_SKIP,
               "LlavaNextForConditionalGeneration", "LLaVA-NeXT", resize="tiles"),
        Family("llava", "yolo", "LlavaProcessor", "llava", _LLAVA_SKIP,
               "LlavaForConditionalGeneration", "LLaVA"),
        Family("qwen2_vl", "qwen", "Qwen2VLProcessor", "qwen2_vl", _QWEN_SKIP,
               "Qwen2VLForConditionalGeneration", "Qwen2-VL", resize="smart", keep_tokens=_QWEN2_TOKENS),
        Family("qwen2_5_vl", "resized-pixels", "Qwen2_5_VLProcessor", "qwen2_5_vl", _QWEN_SKIP,
               "Qwen2_5_VLForConditionalGeneration", "Qwen2.5-VL", phrasing="qwen2.5-vl", resize="smart"),
        Family("qwen3_vl", "xyxy-1000", "Qwen3VLProcessor", "qwen3_vl", _QWEN_SKIP,
               "Qwen3VLForConditionalGeneration", "Qwen3-VL", phrasing="qwen3-vl", resize="smart"),
        Family("internvl", "xyxy-1000", "InternVLProcessor", "internvl", _LLAVA_SKIP,
               "InternVLForConditionalGeneration", "InternVL3 (-hf)", phrasing="internvl", resize="tiles",
               keep_tokens=r"</?(?:ref|box)>"),
        Family("florence2", "florence-loc", "Florence2Processor", "florence2", _LLAVA_SKIP,
               "Florence2ForConditionalGeneration", "Florence-2 (encoder-decoder)", phrasing="florence-2",
               chat=False, keep_tokens=r"<loc_\d+>"),
        Family("paligemma", "paligemma-loc", "PaliGemmaProcessor", "paligemma", _LLAVA_SKIP,
               "PaliGemmaForConditionalGeneration", "PaliGemma / PaliGemma 2", phrasing="paligemma",
               chat=False, keep_tokens=r"<loc\d{4}>", image_in_prompt=True),
        Family("idefics3", "none", "Idefics3Processor", "idefics3", ("model.vision_model", "lm_head"),
               "Idefics3ForConditionalGeneration", "Idefics3", resize="tiles", grounds=False, nested_images=True),
        Family("smolvlm", "none", "SmolVLMProcessor", "smolvlm", ("model.vision_model", "lm_head"),
               "SmolVLMForConditionalGeneration", "SmolVLM", resize="tiles", grounds=False, nested_images=True),
    ]
}

# Families known by name that transformers does not hold natively: their own Python code would
# run on load (``trust_remote_code``), which this package does only when asked (--trust-remote-code).
REMOTE_CODE_FAMILIES = {"tinyllava": "TinyLLaVA", "internvl_chat": "InternVL (original, not -hf)",
                        "florence2_language": "Florence-2 (original remote-code release)"}


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
    trust_remote_code: bool = False  # run Python code shipped with the model (TinyLLaVA, original InternVL…)

    def describe(self) -> str:
        extra = [f"adapter={self.adapter}"] if self.adapter else []
        extra += [f"quantize={self.quantize}"] if self.quantize else []
        extra += ["trust_remote_code"] if self.trust_remote_code else []
        return self.model + (f" ({', '.join(extra)})" if extra else "")

    @classmethod
    def add_arguments(cls, p, device_help: str = "cpu, cuda, cuda:1 … (default: CUDA when available)") -> None:
        """The model options every command shares (--model, --adapter, --quantize, --dtype, --device,
        --trust-remote-code), on an argparse parser; ``from_args`` reads them back."""
        p.add_argument("--model", default=NANO, help="nano (embedded), a model folder, or a hub id")
        p.add_argument("--adapter", help="a LoRA adapter folder (peft)")
        p.add_argument("--quantize", choices=["4bit", "8bit"], help="load the LLM quantized (bitsandbytes)")
        p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], help="default: bf16 on CUDA, fp32 on CPU")
        p.add_argument("--device", help=device_help)
        cls.add_trust_remote_code(p)

    @staticmethod
    def add_trust_remote_code(p) -> None:
        p.add_argument("--trust-remote-code", action="store_true",
                       help="allow models that ship their own Python code (TinyLLaVA, original InternVL): "
                            "loading one RUNS that code on this machine; only for models whose source you trust")

    @classmethod
    def from_args(cls, args) -> "ModelSpec":
        return cls(args.model, args.adapter, args.quantize, args.dtype, args.device,
                   trust_remote_code=getattr(args, "trust_remote_code", False))


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

    def input_size(self, picture) -> tuple[int, int]:
        """``(width, height)`` of ``picture`` after this model's processor resizes it."""
        return processor_input_size(self.processor, self.family, *picture.size)

    def view_transform(self, view):
        """The view's Transform; for boxes in resized pixels (Qwen2.5-VL) told the processor's resize."""
        if self.box_convention != "resized-pixels":
            return view.transform
        return view.transform.with_input_size(*self.input_size(view.picture))

    def decode(self, ids) -> str:
        """Token ids → answer text: special tokens dropped, except the family's grounding markup."""
        return decode_answer(self.tokenizer, ids, self.family)

    def on_device(self, inputs: dict) -> dict:
        """Processor outputs → model inputs: on the model's device, pictures (``pixel_values*``) in
        its dtype; the processor's training ``labels`` (PaliGemma adds them) left out. The one place
        that moves inputs, for single and batched asks and scores."""
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
        out = {}
        for k, v in inputs.items():
            if k == "labels":
                continue
            v = v.to(self.device) if hasattr(v, "to") else v
            if k.startswith("pixel_values") and v.is_floating_point():
                v = v.to(dtype)
            out[k] = v
        return out

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


def detect_family(folder: Path, config: dict | None = None, trust_remote_code: bool = False) -> Family:
    """The folder's family from its config. A remote-code model (TinyLLaVA, original InternVL…) is
    refused unless ``trust_remote_code``; then its family loads through transformers' Auto classes
    with its own code and answers in the radio-llava convention (it has no known grounding format)."""
    config = config if config is not None else read_config(folder)
    if "mm_vision_tower" in config or "mm_projector_type" in config:
        raise RadioLlavaError(
            f"{folder} is a LLaVA-NeXT training checkpoint, not a transformers model; convert it "
            f"with `radiollava model convert {folder} {folder}-hf` and load {folder}-hf")
    model_type = config.get("model_type")
    if model_type not in FAMILIES and (model_type in REMOTE_CODE_FAMILIES or "auto_map" in config):
        title = REMOTE_CODE_FAMILIES.get(model_type, repr(model_type))
        if trust_remote_code:
            return Family(str(model_type), "yolo", "AutoProcessor", "", ("lm_head",), "AutoModelForCausalLM",
                          f"{title} (remote code)", remote_code=True)
        raise RadioLlavaError(
            f"{folder}: {title} ships its own Python code (remote code: loading it runs that Python code on "
            f"this machine) and transformers has no native class for it; pass --trust-remote-code only if you "
            f"trust where the model came from, or use a natively supported family or a -hf conversion")
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
def processor_input_size(processor, family: Family, width: int, height: int) -> tuple[int, int]:
    """The picture size the model's processor resizes a ``width`` × ``height`` picture to.

    Qwen families (``resize == "smart"``): transformers' own ``smart_resize`` with the image
    processor's patch × merge factor and pixel budget, as its ``_preprocess`` calls it (sides
    multiples of the factor, 28 for Qwen2-VL/2.5-VL). Fixed-size processors: their ``size``.
    Tiling processors (LLaVA-NeXT/OneVision, InternVL, Idefics3): the picture itself (their
    boxes are normalised, so the tiling does not change where a box lands).
    """
    ip = getattr(processor, "image_processor", None)
    if family.resize == "smart" and ip is not None:
        if getattr(ip, "do_resize", True) is False:
            return int(width), int(height)
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        size = ip.size
        get = size.get if hasattr(size, "get") else (lambda k, d=None: getattr(size, k, d))
        min_pixels = get("shortest_edge") or getattr(ip, "min_pixels", None)
        max_pixels = get("longest_edge") or getattr(ip, "max_pixels", None)
        h, w = smart_resize(int(height), int(width), factor=ip.patch_size * ip.merge_size,
                            min_pixels=min_pixels, max_pixels=max_pixels)
        return int(w), int(h)
    if family.resize == "fixed" and ip is not None:
        size = getattr(ip, "size", None) or {}
        get = size.get if hasattr(size, "get") else (lambda k, d=None: getattr(size, k, d))
        if get("height") and get("width"):
            return int(get("width")), int(get("height"))
    return int(width), int(height)


def decode_answer(tokenizer, ids, family: Family) -> str:
    """Decode generated ids: special tokens dropped, the family's grounding tokens kept."""
    ids = [int(i) for i in ids]
    if not family.keep_tokens:
        return tokenizer.decode(ids, skip_special_tokens=True)
    import re

    keep = re.compile(family.keep_tokens)
    special = set(tokenizer.all_special_ids)
    kept = [i for i in ids if i not in special or keep.fullmatch(tokenizer.convert_ids_to_tokens(i) or "")]
    text = tokenizer.decode(kept, skip_special_tokens=False)
    for token in tokenizer.all_special_tokens:   # added special tokens all_special_ids may miss
        if token and not keep.fullmatch(token):
            text = text.replace(token, "")
    return text


def decoder_prefix(model) -> list[int]:
    """What an encoder–decoder's answer follows in its decoder: the decoder start token, and the
    forced BOS when the generation config forces one (Florence-2: </s> <s>). Scoring and training
    both put answers after it, as ``generate`` does."""
    gen = getattr(model, "generation_config", None)
    start = getattr(gen, "decoder_start_token_id", None)
    if start is None:
        start = model.config.get_text_config().decoder_start_token_id
    forced = getattr(gen, "forced_bos_token_id", None)
    return [int(start)] + ([int(forced)] if forced is not None else [])


def image_only_processor_class(family: str):
    """The family's processor without its video processor (which needs torchvision).

    ``ProcessorMixin`` reads its sub-processors from ``__init__``'s signature, so a subclass whose
    ``__init__`` names only ``image_processor`` and ``tokenizer`` (plus options) works without one.
    """
    import importlib

    fam = FAMILIES[family]
    module = importlib.import_module(f"transformers.models.{fam.module}.processing_{fam.module}")
    base = getattr(module, fam.processor)

    needs_video = _needs_video_argument(base)

    def __init__(self, image_processor=None, tokenizer=None, **options):
        if needs_video:       # SmolVLM: a required argument, handed None
            options.setdefault("video_processor", None)
        base.__init__(self, image_processor=image_processor, tokenizer=tokenizer, **options)
        if needs_video and getattr(self, "video_processor", None) is None:
            self.video_processor = _NoVideo()   # its options (num_frames, fps) read as None

    def to_dict(self):  # save the options too (the base reads them from its own signature)
        out = base.to_dict(self)
        for name in _processor_options(base):
            if hasattr(self, name) and name not in out:
                out[name] = getattr(self, name)
        return out

    return type(fam.processor, (base,), {"__init__": __init__, "to_dict": to_dict, "__module__": __name__})


class _NoVideo:
    """Stands in for the video processor an image-only processor leaves out: every option is None."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def __bool__(self):
        return False


def _needs_video_argument(base) -> bool:
    import inspect

    param = inspect.signature(base.__init__).parameters.get("video_processor")
    return param is not None and param.default is inspect.Parameter.empty


def _processor_options(base) -> list[str]:
    import inspect

    skip = {"self", "image_processor", "tokenizer", "video_processor", "chat_template", "kwargs"}
    return [n for n in inspect.signature(base.__init__).parameters if n not in skip]


def load_processor(folder: Path, family: Family):
    """AutoProcessor; without torchvision, the image-only processor assembled from the folder's parts."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    if family.remote_code:
        try:
            return AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise RadioLlavaError(f"{folder}: its remote code gives no processor for pictures and text ({first}); "
                                  "radiollava needs one (AutoProcessor): use a -hf conversion of the model") from None
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
    try:
        return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **options)
    except ImportError as exc:        # SmolVLM's processor needs num2words
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise RadioLlavaError(f"{folder}: the {family.title} processor needs a package that is not installed "
                              f"({first})") from None


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
    family = detect_family(folder, config, trust_remote_code=spec.trust_remote_code)
    device, dtype = _choose_device_dtype(spec)
    quant = quantization_config(spec, family, dtype)

    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs = {"dtype": torch_dtype(dtype)}
    if family.remote_code:
        kwargs["trust_remote_code"] = True
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device}
    try:
        from safetensors import SafetensorError
    except ImportError:                   # older safetensors: its error is an OSError or ValueError
        SafetensorError = OSError
    try:
        try:
            model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
        except ValueError:
            if not family.remote_code:
                raise
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)   # TinyLLaVA registers this one
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


# ------------------------------------------------------------------ describing a model
def _safetensors_summary(folder: Path) -> tuple[int, dict[str, int]]:
    """Parameter count and elements per dtype, read from the safetensors headers (no weights loaded)."""
    import struct

    total, dtypes = 0, {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
        except (OSError, ValueError, struct.error) as exc:
            raise RadioLlavaError(f"{path}: unreadable safetensors header ({exc}); copy the file again") from None
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for d in entry["shape"]:
                count *= int(d)
            total += count
            dtypes[entry["dtype"]] = dtypes.get(entry["dtype"], 0) + count
    return total, dtypes


def _picture_size_text(processor, family: Family) -> tuple[str, dict]:
    """How the processor sizes the picture, in words, with two worked examples."""
    ip = getattr(processor, "image_processor", None)
    examples = {f"{n}x{n}": "x".join(map(str, processor_input_size(processor, family, n, n))) for n in (64, 256)}
    if ip is None:
        return "unknown (no image processor)", examples
    if family.resize == "smart":
        size = ip.size
        get = size.get if hasattr(size, "get") else (lambda k, d=None: getattr(size, k, d))
        factor = ip.patch_size * ip.merge_size
        text = (f"smart_resize: sides multiples of {factor} (patch {ip.patch_size} x merge {ip.merge_size}), "
                f"{get('shortest_edge')}..{get('longest_edge')} pixels; boxes in resized pixels map back")
        return text, examples
    size = _size_words(getattr(ip, "size", None))
    if family.resize == "tiles":
        return f"tiles of {size} (anyres / dynamic tiling); its boxes are relative to the picture", {}
    return f"resized to {size}", examples


def _size_words(size) -> str:
    """A processor ``size`` (dict or SizeDict) as "128x128" or "shortest_edge=384"."""
    keys = ("height", "width", "shortest_edge", "longest_edge")
    get = size.get if hasattr(size, "get") else (lambda k, d=None: getattr(size, k, d))
    values = {k: get(k) for k in keys if get(k) is not None} if size is not None else {}
    if "height" in values and "width" in values:
        return f"{values['width']}x{values['height']}"
    return ", ".join(f"{k}={v}" for k, v in values.items()) or str(size)


def model_info(spec: ModelSpec | str) -> dict:
    """What ``radiollava model info`` prints: family, box convention, picture size, parameters,
    dtype and the preprocessing profile, read from the folder without loading the weights."""
    from .parsing import BOX_CONVENTIONS

    spec = ModelSpec(spec) if isinstance(spec, str) else spec
    folder = resolve_model_folder(spec.model)
    if not (folder / "config.json").is_file() and (folder / "adapter_config.json").is_file():
        spec = _adapter_folder_spec(spec, folder)
        folder = resolve_model_folder(spec.model)
    config = read_config(folder)
    family = detect_family(folder, config, trust_remote_code=spec.trust_remote_code)
    convention = BOX_CONVENTIONS[family.box_convention]
    params, dtypes = _safetensors_summary(folder)
    processor = load_processor(folder, family)
    picture, examples = _picture_size_text(processor, family)
    profile = load_profile(spec.adapter if spec.adapter and (Path(spec.adapter) / "preprocessing.json").is_file()
                           else folder)
    saved_dtype = config.get("dtype") or config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    return {"model": spec.model, "folder": str(folder), "family": family.name, "title": family.title,
            "model_class": family.model_class, "box_convention": convention.name,
            "box_description": convention.description, "box_example": convention.syntax,
            "grounds": family.grounds, "phrasing": family.phrasing, "chat_template": family.chat,
            "picture_size": picture, "picture_examples": examples, "parameters": params,
            "weights_dtype": dtypes, "config_dtype": saved_dtype, "adapter": spec.adapter,
            "profile": profile.to_dict()}


def format_model_info(info: dict) -> str:
    """``model_info`` as aligned lines for people."""
    p = info["profile"]
    n = info["parameters"]
    size = f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"
    weights = ", ".join(f"{k} {v / max(n, 1):.0%}" for k, v in sorted(info["weights_dtype"].items())) or "none found"
    examples = ", ".join(f"{k} -> {v}" for k, v in info["picture_examples"].items())
    examples = f" ({examples})" if examples else ""
    where = "" if info["folder"] == info["model"] else f" ({info['folder']})"
    rows = [("model", f"{info['model']}{where}"),
            ("family", f"{info['family']}: {info['title']}, {info['model_class']}"),
            ("boxes", f"{info['box_convention']}: {info['box_description']}"),
            ("  e.g.", info["box_example"] or "(none)"),
            ("prompts", f"phrasing {info['phrasing']!r}, " + ("chat template" if info["chat_template"]
                                                               else "raw task prompts (not a chat model)")),
            ("picture", f"{info['picture_size']}{examples}"),
            ("parameters", f"{size} ({n:,})"),
            ("dtype", f"weights {weights}; config {info['config_dtype']}; loads as bf16 on CUDA, fp32 on CPU "
                      "unless --dtype"),
            ("profile", f"{p['name']} v{p['version']}: north_up={p['north_up']}, stretch={p['stretch']}, "
                        f"size={p['size']}")]
    if info["adapter"]:
        rows.insert(1, ("adapter", info["adapter"]))
    return "\n".join(f"{k:<11} {v}" for k, v in rows)
