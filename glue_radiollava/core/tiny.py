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

TINY_FAMILIES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "florence2", "paligemma",
                 "idefics3", "smolvlm")


def build_tiny_family(folder: str | Path, family: str = "llava_onevision", seed: int = 0) -> Path:
    """Build and save a tiny random model of ``family`` offline: tokenizer with the family's
    special tokens (image and grounding tokens) and chat template, its real processor class,
    preprocessing profile; returns the folder."""
    from .errors import RadioLlavaError

    if family not in TINY_FAMILIES:
        raise RadioLlavaError(f"model tiny --family {family}: not buildable here; choose one of "
                              f"{', '.join(TINY_FAMILIES)}")
    if family == "llava_onevision":
        return build_tiny(folder, seed=seed)
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if family.startswith("qwen"):
        model, processor = _tiny_qwen(family)
    else:
        model, processor = _TINY_BUILDERS[family]()
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    from .profiles import get_profile, save_profile

    save_profile(get_profile("radio-llava"), folder)
    return folder


def _family_tokenizer(special: list[str], plain: list[str] = (), *, eos: str = "<|im_end|>", bos: str | None = None,
                      unk: str | None = None, extra: dict | None = None, chat_template: str | None = None):
    """The byte-level BPE of ``build_tokenizer`` with a family's own special tokens (``special``) and
    plain added tokens (``plain``: location bins, which the family's answers write as text)."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    backend = build_tokenizer().backend_tokenizer      # ChatML tokens, <image>, <video>, <pad>
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    if plain:
        backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, bos_token=bos, unk_token=unk,
                                   pad_token="<pad>", extra_special_tokens=extra or {},
                                   chat_template=chat_template, padding_side="left")


def _image_only(family: str, image_processor, tokenizer, **options):
    from .models import image_only_processor_class

    return image_only_processor_class(family)(image_processor=image_processor, tokenizer=tokenizer, **options)


def _text(tok, model_type: str, **extra) -> dict:
    """A 2-layer, 64-wide language model config of ``model_type`` for ``tok``."""
    return dict(model_type=model_type, vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                tie_word_embeddings=False, **extra)


def _tiny_internvl():
    """InternVL3 in the -hf layout: InternViT (56 px tiles of 14 px patches, pixel shuffle 0.5 → 4
    tokens a tile), a Qwen2 LLM, GotOcr2 dynamic tiling (up to 4 tiles + thumbnail); the image part
    of the chat template is <IMG_CONTEXT>, which the processor expands to <img>…</img>."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    template = CHAT_TEMPLATE.replace("<image>\n", "<IMG_CONTEXT>\n")
    extra = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tok = _family_tokenizer(["<img>", "</img>", "<IMG_CONTEXT>"] + INTERNVL_GROUNDING_TOKENS, extra=extra,
                            chat_template=template)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 56, "width": 56}, crop_to_patches=True,
                                               min_patches=1, max_patches=4)
    processor = _image_only("internvl", image_processor, tok, image_seq_length=4, chat_template=template)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                  image_size=[56, 56], patch_size=[14, 14])
    config = InternVLConfig(vision_config=vision, text_config=_text(tok, "qwen2"), image_seq_length=4,
                            image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), tie_word_embeddings=False)
    return InternVLForConditionalGeneration(config), processor


def _tiny_florence2():
    """Florence-2 (-hf, encoder–decoder): a 4-stage DaViT (stride 32: a 64 px picture is 2×2 + 1
    pooled = 5 image tokens), a BART encoder–decoder, a BART-style tokenizer (<s> </s> <unk>) with
    the 1000 <loc_N> bins, CLIP image processing to 64×64. Not a chat model: the task token
    (<OD>, <OPEN_VOCABULARY_DETECTION>…) is the prompt."""
    from transformers import Florence2Config, Florence2ForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = _family_tokenizer(["<s>", "</s>", "<unk>"], [f"<loc_{i}>" for i in range(1000)], eos="</s>", bos="<s>",
                            unk="<unk>", extra={"image_token": "<image>"})
    image_processor = CLIPImageProcessorPil(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64},
                                            do_center_crop=False, image_seq_length=5)
    processor = _image_only("florence2", image_processor, tok)
    vision = dict(depths=[1, 1, 1, 1], embed_dim=[16, 32, 32, 64], num_heads=[1, 1, 2, 2], num_groups=[1, 1, 2, 2],
                  window_size=2, projection_dim=64, max_position_embeddings=8, drop_path_rate=0.0)
    text = dict(vocab_size=len(tok), d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=1024,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=tok.bos_token_id)
    config = Florence2Config(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"))
    model = Florence2ForConditionalGeneration(config)
    # as the released checkpoints: the decoder starts with </s> and is forced to <s> next
    model.generation_config.decoder_start_token_id = tok.eos_token_id
    model.generation_config.forced_bos_token_id = tok.bos_token_id
    return model, processor


def _tiny_paligemma():
    """PaliGemma: SigLIP (32 px, 8 px patches → 16 image tokens), a Gemma LLM, a Gemma-style
    tokenizer (<bos> <eos>); the processor itself adds the 1024 <locNNNN> and 128 <segNNN> tokens.
    Not a chat model: "detect …" prompts, image tokens then <bos> then the prompt then a newline."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = _family_tokenizer(["<bos>", "<eos>"], eos="<eos>", bos="<bos>", extra={"image_token": "<image>"})
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32}, image_seq_length=16)
    processor = _image_only("paligemma", image_processor, tok)      # adds <loc0000>…<loc1023>, <seg000>…
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8, projection_dim=64)
    text = _text(tok, "gemma", head_dim=32)
    text.update(num_attention_heads=2, num_key_value_heads=1)
    config = PaliGemmaConfig(vision_config=vision, text_config=text, projection_dim=64,
                             image_token_id=tok.convert_tokens_to_ids("<image>"))
    return PaliGemmaForConditionalGeneration(config), processor


# Idefics3 and SmolVLM write "User:<image>question<end_of_utterance>\nAssistant:" (SmolVLM adds
# <|im_start|> before the first turn; the tiny models share one template).
IDEFICS3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}{{ ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_utterance>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _tiny_idefics3(family: str = "idefics3"):
    """Idefics3 / SmolVLM: SigLIP-style tiles of 32 px (8 px patches, pixel shuffle 2 → 4 tokens a
    tile), pictures split into tiles of at most 32 px plus a global one, a Llama LLM, the
    <fake_token_around_image>, <global-img> and <row_i_col_j> tokens. No grounding."""
    import transformers

    if family == "idefics3":
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil as IP
    else:
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil as IP
    prefix = "Idefics3" if family == "idefics3" else "SmolVLM"
    tiles = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    extra = {"fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
             "end_of_utterance_token": "<end_of_utterance>"}
    tok = _family_tokenizer(list(extra.values()) + tiles, eos="<end_of_utterance>",
                            extra={"image_token": "<image>", **extra}, chat_template=IDEFICS3_CHAT_TEMPLATE)
    image_processor = IP(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    processor = _image_only(family, image_processor, tok, image_seq_len=4, chat_template=IDEFICS3_CHAT_TEMPLATE)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    config = getattr(transformers, f"{prefix}Config")(vision_config=vision, text_config=_text(tok, "llama"),
                                                      image_token_id=tok.convert_tokens_to_ids("<image>"),
                                                      scale_factor=2)
    return getattr(transformers, f"{prefix}ForConditionalGeneration")(config), processor


# InternVL's grounding markup: <ref>phrase</ref><box>[[x0, y0, x1, y1]]</box> (0..1000).
INTERNVL_GROUNDING_TOKENS = ["<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>"]

_TINY_BUILDERS = {"internvl": _tiny_internvl, "florence2": _tiny_florence2, "paligemma": _tiny_paligemma,
                  "idefics3": _tiny_idefics3, "smolvlm": lambda: _tiny_idefics3("smolvlm")}


def _qwen_tokenizer():
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    backend = build_tokenizer().backend_tokenizer      # ChatML tokens and <pad> already there
    tokens = list(QWEN_VISION_TOKENS.values()) + QWEN_GROUNDING_TOKENS
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<pad>", bos_token=None, unk_token=None,
        extra_special_tokens=QWEN_VISION_TOKENS, chat_template=QWEN_CHAT_TEMPLATE, padding_side="left")


def _tiny_qwen(family: str):
    """Qwen2-VL, Qwen2.5-VL or Qwen3-VL, every Linear ≥ 64 wide, with the real patch × merge:
    14 × 2 (a factor of 28) for Qwen2/2.5-VL, so ``smart_resize`` moves a 64-pixel picture to 56
    pixels as the real processor does; 16 × 2 (32) for Qwen3-VL, which keeps 64 pixels."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = _qwen_tokenizer()
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in QWEN_VISION_TOKENS.items()}
    patch, merge = (16 if family == "qwen3_vl" else 14), 2
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
    elif family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as Config, Qwen2_5_VLForConditionalGeneration as Model

        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64,
                      patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1])
    else:   # Qwen3-VL: learned position embeddings (a square count), DeepStack features from block 0
        from transformers import Qwen3VLConfig as Config, Qwen3VLForConditionalGeneration as Model

        text.update(head_dim=16, rope_parameters={**text["rope_parameters"], "mrope_interleaved": True})
        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64,
                      patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2,
                      num_position_embeddings=64, deepstack_visual_indexes=[0])
    config = Config(vision_config=vision, text_config=text, **tokens)
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    image_processor = Qwen2VLImageProcessorPil(patch_size=patch, merge_size=merge, temporal_patch_size=2,
                                               min_pixels=(patch * merge) ** 2, max_pixels=(4 * patch * merge) ** 2)
    processor = _image_only(family, image_processor, tokenizer, chat_template=QWEN_CHAT_TEMPLATE)
    return Model(config), processor


def llava_onevision_processor(tokenizer, settings: dict):
    """A LLaVA-OneVision processor from a published configuration's processor settings (``size``,
    ``image_grid_pinpoints``, mean/std, ``num_image_tokens``, feature strategy, aspect ratio; the
    ``_processor`` block of tests/fixtures/llava_onevision_*.json) and a tokenizer."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

    from .models import image_only_processor_class

    image_processor = LlavaOnevisionImageProcessorPil(size=settings["size"],
                                                      image_grid_pinpoints=settings["image_grid_pinpoints"],
                                                      image_mean=settings["image_mean"], image_std=settings["image_std"])
    return image_only_processor_class("llava_onevision")(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
        num_image_tokens=settings["num_image_tokens"],
        vision_feature_select_strategy=settings["vision_feature_select_strategy"],
        vision_aspect_ratio=settings["vision_aspect_ratio"])
