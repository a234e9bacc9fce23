"""A Qwen2-VL family folder through the core, without torchvision: load, ask, score, Qwen boxes.

The model is a tiny random ``Qwen2VLForConditionalGeneration`` built offline: the in-process BPE
tokenizer of ``core.tiny`` plus the Qwen vision tokens, a ChatML template that renders an image
part as ``<|vision_start|><|image_pad|><|vision_end|>``, the PIL image processor with 8-pixel
patches and a 64×64 pixel budget (a 64×64 picture → a 8×8 patch grid → 16 image tokens).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from glue_radiollava.core.assistant import Assistant
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.models import load_model
from glue_radiollava.core.tiny import QWEN_CHAT_TEMPLATE

QWEN_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
               "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}


PATCH, MERGE = 8, 2
CUT = (88, 48, 152, 112)          # a 64×64 cutout around the synthetic source at (120, 80)


def build_tiny_qwen2vl(folder: Path, seed: int = 0) -> Path:
    """Build and save a tiny random Qwen2-VL in the Hugging Face layout, fully offline."""
    import torch
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from glue_radiollava.core.models import image_only_processor_class
    from glue_radiollava.core.profiles import get_profile, save_profile
    from glue_radiollava.core.tiny import build_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    backend = build_tokenizer().backend_tokenizer   # ChatML tokens and <pad> already there
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_TOKENS.values()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<pad>", bos_token=None, unk_token=None,
        extra_special_tokens=QWEN_TOKENS, chat_template=QWEN_CHAT_TEMPLATE, padding_side="left")
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in QWEN_TOKENS.items()}

    # Every Linear is ≥ 64 wide: text 64 (4 heads × 16, k/v 4 × 16), MLP 128; vision 64, merger 256 → 64.
    # head_dim 16 → 8 rotary frequencies, split over (t, h, w) by mrope_section.
    config = Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=64, hidden_size=64, num_heads=2, mlp_ratio=2,
                           patch_size=PATCH, spatial_merge_size=MERGE, temporal_patch_size=2),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None),
        image_token_id=ids["image_token"], video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"], vision_end_token_id=ids["vision_end_token"])
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)

    image_processor = Qwen2VLImageProcessorPil(patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2,
                                               min_pixels=(PATCH * MERGE) ** 2, max_pixels=64 * 64)
    processor = image_only_processor_class("qwen2_vl")(image_processor=image_processor, tokenizer=tokenizer,
                                                       chat_template=QWEN_CHAT_TEMPLATE)
    processor.save_pretrained(folder)
    save_profile(get_profile("radio-llava"), folder)
    return folder


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("qwen2vl") / "model")


@pytest.fixture(scope="module")
def qwen(qwen_dir):
    return Assistant(load_model(str(qwen_dir)))


@pytest.fixture()
def view(qwen, synthetic_fits):
    return qwen.view(RadioImage.open(synthetic_fits()).cutout_pixels(*CUT))


def test_qwen2vl_folder_loads_as_its_family(qwen_dir, qwen):
    names = {p.name for p in qwen_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
            "chat_template.jinja", "preprocessing.json"} <= names
    config = json.loads((qwen_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_vl"
    assert config["text_config"]["hidden_size"] >= 64 and config["vision_config"]["embed_dim"] >= 64
    loaded = qwen.loaded
    assert loaded.family.name == "qwen2_vl" and loaded.box_convention == "qwen"
    assert type(loaded.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert loaded.device == "cpu" and loaded.dtype == "fp32" and loaded.profile.name == "radio-llava"
    import torch

    small = [(n, m) for n, m in loaded.model.named_modules()
             if isinstance(m, torch.nn.Linear) and min(m.in_features, m.out_features) < 64]
    assert not small, small
    processor = loaded.processor
    assert type(processor).__name__ == "Qwen2VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert processor.image_token == "<|image_pad|>" and processor.image_token_id == config["image_token_id"]
    if importlib.util.find_spec("torchvision") is None:   # AutoProcessor failed: the image-only subclass
        assert type(processor).__module__ == "glue_radiollava.core.models"
        assert not hasattr(processor, "video_processor") or processor.video_processor is None


def test_prompt_expands_the_image_into_merged_patches(qwen, view):
    assert view.picture.size == (64, 64)
    inputs = qwen._inputs(view, "Describe the image.")
    grid = inputs["image_grid_thw"].tolist()
    assert grid == [[1, 64 // PATCH, 64 // PATCH]]
    n_tokens = (64 // PATCH) ** 2 // MERGE ** 2
    assert tuple(inputs["pixel_values"].shape) == ((64 // PATCH) ** 2, 3 * 2 * PATCH * PATCH)
    assert inputs["pixel_values"].dtype == next(qwen.loaded.model.parameters()).dtype
    text = qwen.loaded.tokenizer.decode(inputs["input_ids"][0])
    assert "<|vision_start|>" + "<|image_pad|>" * n_tokens + "<|vision_end|>Describe the image." in text
    assert int(inputs["mm_token_type_ids"].sum()) == n_tokens


def test_ask_generates_tokens(qwen, view):
    chunks = []
    a = qwen.ask(view, question="Describe the image.", max_new_tokens=5, on_text=chunks.append)
    b = qwen.ask(view, question="Describe the image.", max_new_tokens=5)
    assert a.timings["new_tokens"] >= 1 and a.text == b.text
    assert "".join(chunks).strip() == a.text
    d = a.to_dict()
    assert d["model"]["family"] == "qwen2_vl" and d["region"]["pixel_box"] == list(CUT)


def test_score_probabilities_match_single_forward_passes(qwen, view):
    import torch

    s = qwen.score(view, task="b3-radio-galaxy")
    assert s.labels == ["Yes", "No"] and abs(sum(s.probs) - 1) < 1e-6 and all(0 < p < 1 for p in s.probs)
    assert s.best in s.labels
    # the batched pass (right padding, repeated pixel_values / image_grid_thw / mm_token_type_ids)
    # gives each answer the likelihood of an unpadded pass of its own
    tok = qwen.loaded.tokenizer
    inputs = qwen._inputs(view, qwen.question_for(None, "b3-radio-galaxy")[0])
    p0 = inputs["input_ids"].shape[1]
    for label, total in zip(s.labels, s.logprobs):
        answer = tok.encode(label, add_special_tokens=False) + [tok.eos_token_id]
        extra = torch.tensor([answer])
        batch = dict(inputs, input_ids=torch.cat([inputs["input_ids"], extra], 1),
                     attention_mask=torch.ones(1, p0 + len(answer), dtype=torch.long),
                     mm_token_type_ids=torch.nn.functional.pad(inputs["mm_token_type_ids"], (0, len(answer))))
        with torch.inference_mode():
            logp = torch.log_softmax(qwen.loaded.model(**batch).logits.float()[0], -1)
        single = float(logp[torch.arange(p0 - 1, p0 - 1 + len(answer)), torch.tensor(answer)].sum())
        assert single == pytest.approx(total, abs=1e-4)


def test_qwen_corner_boxes_map_to_mosaic_pixels(qwen, view):
    text = ("<|object_ref_start|>COMPACT<|object_ref_end|><|box_start|>(375,375),(625,625)<|box_end|>"
            " and (0,0),(1000,1000)")
    answer = qwen.answer_for(view, "find them", qwen.question_for(None, "boxes-compact")[1], text, False, {})
    assert answer.parsed.parsed and answer.parsed.convention == "qwen" and not answer.warnings
    first, whole = answer.boxes
    # picture 64×64 = cutout (no resize, north down): edge u → mosaic X = 88 - 0.5 + 64·u
    assert first.pixel_box == pytest.approx((111.5, 71.5, 127.5, 87.5), abs=1e-9)
    assert whole.pixel_box == pytest.approx((87.5, 47.5, 151.5, 111.5), abs=1e-9)
    assert first.label == "COMPACT" and whole.label == "COMPACT"
    assert first.width_arcsec == pytest.approx(16 * 1.5) and first.height_arcsec == pytest.approx(16 * 1.5)
    centre = view.transform.wcs.pixel_to_world(119.5, 79.5)
    assert (first.ra, first.dec) == pytest.approx((centre.ra.deg, centre.dec.deg), abs=1e-9)
    # the same corners straight through skyregions.map_boxes
    from glue_radiollava.core.skyregions import map_boxes

    boxes, warnings = map_boxes(answer.parsed.boxes, view.transform)
    assert [b.pixel_box for b in boxes] == [first.pixel_box, whole.pixel_box] and not warnings
    assert np.allclose(answer.parsed.boxes[0].to_yolo(), [0.5, 0.5, 0.25, 0.25])
