"""Build a tiny random LLaVA-OneVision fully offline (for tests and for checking an install).

The tokenizer is a byte-level BPE trained in-process on radio-astronomy text (the task catalogue
and a few sentences), with ChatML special tokens and a chat template; the model is a SigLIP-style
vision tower, an MLP projector and a Qwen2-style LLM. Every Linear layer that bitsandbytes may
quantize has at least 64 input features (smaller ones crash 4-bit kernels on CPU).
"""

from __future__ import annotations

import math
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>", "<pad>"]

# ChatML, as LLaVA-OneVision/Qwen2 use it; an image part renders as "<image>\n" before the text.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """
You are an AI assistant specialized in radio astronomical topics.
The image contains compact radio sources, extended radio sources and diffuse emission.
Please provide the bounding box coordinates of all compact sources present in the image.
[0.45, 0.32, 0.05, 0.04], [0.7, 0.1, 0.12, 0.2], [0.5, 0.5, 0.25, 0.25]
The image does not contain compact radio sources. Yes. No. NONE. FR-I FR-II 1C-1P 1C-2P 1C-3P 2C-2P 2C-3P 3C-3P
ORDINARY COMPLEX PECULIAR EXTENDED DIFFUSE DIFFUSE-LARGE RADIO-GALAXY ARTIFACT ARTEFACT FILAMENT BORDER
A radio galaxy with two lobes and hotspots; jets fading outward from a bright core; sidelobe rings.
0123456789 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0
"""


def _corpus() -> list[str]:
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    try:
        from .tasks import load_tasks

        lines += [t.prompt for t in load_tasks().values()]
    except Exception:  # the catalogue is a nicety for the tokenizer, not a requirement
        pass
    return lines


def build_tokenizer(vocab_size: int = 600, corpus: list[str] | None = None, coordinate_tokens: bool = False):
    """A byte-level BPE tokenizer trained in-process (on ``corpus`` plus the task catalogue).

    With ``coordinate_tokens`` every box value the radio-llava text convention writes ("0.0" … "1.0",
    ``parsing.COORDINATE_STRINGS``) is one added token; the longest match wins, so "0.11" is one
    token, not "0.1" + "1", and decoding returns the text unchanged."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    from .parsing import COORDINATE_STRINGS
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_corpus() * 4 + list(corpus or []), trainer=trainer)
    if coordinate_tokens:
        tok.add_tokens([AddedToken(s, single_word=False, normalized=False) for s in COORDINATE_STRINGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>", pad_token="<pad>", bos_token=None, unk_token=None,
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    return fast


def coordinate_token_ids(tokenizer) -> list[int] | None:
    """The ids of the 101 coordinate tokens, in value order; None when the tokenizer has none."""
    from .parsing import COORDINATE_STRINGS

    vocab = tokenizer.get_vocab()
    ids = [vocab.get(s) for s in COORDINATE_STRINGS]
    return None if None in ids else ids


def _init_coordinate_rows(model, tokenizer) -> None:
    """Coordinate tokens start from a sinusoidal code of their value (input and output rows), so
    neighbouring values start alike and the model need not learn their order from scratch."""
    import torch

    ids = coordinate_token_ids(tokenizer)
    if ids is None:
        return
    values = torch.linspace(0, 1, len(ids))[:, None]
    for matrix in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        d = matrix.shape[1]
        freq = torch.logspace(0, math.log10(60), d // 2)[None, :] * math.pi
        code = torch.cat([torch.sin(values * freq), torch.cos(values * freq)], 1)
        if code.shape[1] < d:
            code = torch.cat([code, torch.zeros(len(ids), d - code.shape[1])], 1)
        with torch.no_grad():
            matrix[ids] = code * matrix.std()


def build_tiny(folder: str | Path, seed: int = 0, image_size: int = 32, patch_size: int = 8,
               hidden: int = 64, layers: int = 2, text_hidden: int | None = None,
               text_layers: int | None = None, tokenizer=None, vision_state: dict | None = None,
               vision_heads: int = 2, text_heads: int = 4, profile=None) -> Path:
    """Build and save a small LLaVA-OneVision in the Hugging Face layout; returns the folder.

    By default everything is random and tiny (tests). The nano recipe passes its own sizes, a
    tokenizer trained on its data and a pretrained vision tower (``vision_state``).
    """
    import torch
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              Qwen2Config, SiglipVisionConfig)
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil)

    from .models import image_only_processor_class
    from .profiles import get_profile, save_profile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = tokenizer or build_tokenizer()
    text_hidden, text_layers = text_hidden or hidden, text_layers or layers
    vision = SiglipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                num_attention_heads=vision_heads, image_size=image_size, patch_size=patch_size,
                                vision_use_head=False)
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=text_hidden, intermediate_size=2 * text_hidden,
                       num_hidden_layers=text_layers, num_attention_heads=text_heads, num_key_value_heads=2,
                       max_position_embeddings=4096, tie_word_embeddings=False,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        projector_hidden_act="gelu", vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_1",
        image_grid_pinpoints=[[image_size, image_size]],
    )
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    _init_coordinate_rows(model, tokenizer)
    if vision_state is not None:
        model.model.vision_tower.load_state_dict(vision_state)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)

    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_grid_pinpoints=[[image_size, image_size]])
    processor = image_only_processor_class("llava_onevision")(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_1")
    processor.save_pretrained(folder)
    save_profile(get_profile(profile or "radio-llava"), folder)
    return folder


# ------------------------------------------------------------------ other families
QWEN_VISION_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                      "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}
# The grounding markup of the Qwen2-VL vocabulary (Qwen2.5-VL and Qwen3-VL keep it).
QWEN_GROUNDING_TOKENS = ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                         "<|quad_start|>", "<|quad_end|>"]

# ChatML as the Qwen-VL families write it: an image part is <|vision_start|><|image_pad|><|vision_end|>.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINY_FAMILIES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl")


def build_tiny_family(folder: str | Path, family: str = "llava_onevision", seed: int = 0) -> Path:
    """Build and save a tiny random model of ``family`` offline: tokenizer with the family's
    special tokens and chat template, processor, preprocessing profile; returns the folder."""
    if family == "llava_onevision":
        return build_tiny(folder, seed=seed)
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return _build_tiny_qwen(Path(folder), family, seed)
    from .errors import RadioLlavaError

    raise RadioLlavaError(f"model tiny --family {family}: not buildable here; choose one of "
                          f"{', '.join(TINY_FAMILIES)}")


def _qwen_tokenizer():
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    backend = build_tokenizer().backend_tokenizer      # ChatML tokens and <pad> already there
    tokens = list(QWEN_VISION_TOKENS.values()) + QWEN_GROUNDING_TOKENS
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<pad>", bos_token=None, unk_token=None,
        extra_special_tokens=QWEN_VISION_TOKENS, chat_template=QWEN_CHAT_TEMPLATE, padding_side="left")


def _build_tiny_qwen(folder: Path, family: str, seed: int) -> Path:
    """Qwen2-VL or Qwen2.5-VL, every Linear ≥ 64 wide; the real patch 14 × merge 2 (a factor of 28),
    so ``smart_resize`` moves a 64-pixel picture to 56 pixels, as the real processor does."""
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from .models import image_only_processor_class
    from .profiles import get_profile, save_profile

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _qwen_tokenizer()
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in QWEN_VISION_TOKENS.items()}
    patch, merge = 14, 2
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    tokens = dict(image_token_id=ids["image_token"], video_token_id=ids["video_token"],
                  vision_start_token_id=ids["vision_start_token"], vision_end_token_id=ids["vision_end_token"])
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config, Qwen2VLForConditionalGeneration as Model

        vision = dict(depth=1, embed_dim=64, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=patch,
                      spatial_merge_size=merge, temporal_patch_size=2)
    else:
        from transformers import Qwen2_5_VLConfig as Config, Qwen2_5_VLForConditionalGeneration as Model

        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64,
                      patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1])
    config = Config(vision_config=vision, text_config=text, **tokens)
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = Model(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)

    image_processor = Qwen2VLImageProcessorPil(patch_size=patch, merge_size=merge, temporal_patch_size=2,
                                               min_pixels=(patch * merge) ** 2, max_pixels=112 * 112)
    processor = image_only_processor_class(family)(image_processor=image_processor, tokenizer=tokenizer,
                                                   chat_template=QWEN_CHAT_TEMPLATE)
    processor.save_pretrained(folder)
    save_profile(get_profile("radio-llava"), folder)
    return folder
