"""Real-configuration fidelity (issue 16): the published LLaVA-OneVision 0.5B/7B and Qwen2.5-VL 3B
configurations (tests/fixtures/*.json, with their processors' settings under ``_processor``), built
REDUCED (widths and depths cut, the vision geometry kept: image size, patch size, grid pinpoints,
anyres_max_9, merge size, window, pixel budget) through the real processors and model classes.

Checked: image-token counts (the model's own features must match the processor's tokens: a forward
pass refuses otherwise), anyres tiling of a non-square region, and a box through the real
processor's resize back to mosaic pixels. The SigLIP geometry (729 patches a tile, up to 10 tiles)
is kept at width 32, so each test stays within a few seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _narrow(section: dict, **keep) -> dict:
    """A config section with its widths and depths cut; ``keep`` overrides."""
    out = {k: v for k, v in section.items() if k not in ("architectures", "torch_dtype")}
    out.update(keep)
    return out


@pytest.fixture(scope="module")
def tokenizer():
    from glue_radiollava.core.tiny import build_tokenizer

    return build_tokenizer()        # ChatML, <image>, <video>


@pytest.fixture(scope="module")
def qwen_tokenizer():
    from glue_radiollava.core.tiny import _qwen_tokenizer

    return _qwen_tokenizer()        # ChatML and the Qwen vision and grounding tokens


def _onevision(name: str, tokenizer):
    import torch
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from glue_radiollava.core.tiny import llava_onevision_processor

    real = _fixture(name)
    vision = _narrow(real["vision_config"], hidden_size=32, intermediate_size=64, num_attention_heads=2,
                     num_hidden_layers=1)
    text = _narrow(real["text_config"], hidden_size=64, intermediate_size=128, num_attention_heads=4,
                   num_key_value_heads=2, num_hidden_layers=1, vocab_size=len(tokenizer))
    keep = {k: v for k, v in real.items() if not k.startswith("_") and k not in ("vision_config", "text_config",
                                                                                  "architectures", "torch_dtype")}
    keep.update(image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                video_token_index=tokenizer.convert_tokens_to_ids("<video>"))
    torch.manual_seed(0)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text, **keep)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    p = real["_processor"]
    processor = llava_onevision_processor(tokenizer, p)
    return real, model, processor


def _prompt(processor):
    return processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                          "text": "Describe the image."}]}], tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("name", ["llava_onevision_0.5b.json", "llava_onevision_7b.json"])
def test_onevision_real_geometry_tiles_a_non_square_region(name, tokenizer):
    import torch
    from PIL import Image
    from transformers.image_processing_utils import select_best_resolution

    real, model, processor = _onevision(name, tokenizer)
    assert model.config.vision_config.image_size == 384 and model.config.vision_config.patch_size == 14
    assert len(real["image_grid_pinpoints"]) == 36 and real["vision_aspect_ratio"] == "anyres_max_9"
    picture = Image.new("RGB", (600, 260), (40, 40, 40))          # a wide region (width 600, height 260)
    inputs = processor(images=[picture], text=[_prompt(processor)], return_tensors="pt")
    best_h, best_w = select_best_resolution((260, 600), real["image_grid_pinpoints"])
    tiles = (best_h // 384) * (best_w // 384)
    assert (best_h, best_w) == (384, 768) and inputs["pixel_values"].shape[1] == 1 + tiles   # base + 1×2 tiles
    n_image = int((inputs["input_ids"] == model.config.image_token_index).sum())
    # base 27×27 = 729, then the 1×2 tiles' 27×54 features unpadded to the picture's aspect
    # (23 rows of 54) with a newline token per row
    assert n_image == 729 + 23 * (54 + 1)
    with torch.inference_mode():               # the model's features must match the processor's tokens
        out = model(**{k: v for k, v in inputs.items()})
    assert out.logits.shape[1] == inputs["input_ids"].shape[1]


def test_onevision_box_is_relative_to_the_whole_region(tokenizer, synthetic_fits):
    """Tiling does not move boxes: a yolo box maps to the same mosaic pixels whatever the tiles."""
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.models import FAMILIES, processor_input_size
    from glue_radiollava.core.parsing import format_boxes, parse_boxes
    from glue_radiollava.core.profiles import get_profile, render
    from glue_radiollava.core.skyregions import map_boxes

    _, _, processor = _onevision("llava_onevision_0.5b.json", tokenizer)
    view = render(RadioImage.open(synthetic_fits()).cutout_pixels(20, 60, 180, 120), get_profile("radio-llava"))
    assert processor_input_size(processor, FAMILIES["llava_onevision"], *view.picture.size) == view.picture.size
    text = format_boxes([(0.3, 0.0, 0.5, 1.0)], "yolo")                      # exact in two decimals
    (box,), warnings = map_boxes(parse_boxes(text, "yolo", transform=view.transform).boxes, view.transform)
    assert not warnings
    assert box.pixel_box == pytest.approx((67.5, 59.5, 99.5, 119.5), abs=1e-6)


@pytest.fixture(scope="module")
def qwen25(qwen_tokenizer):
    tokenizer = qwen_tokenizer
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from glue_radiollava.core.models import image_only_processor_class
    from glue_radiollava.core.tiny import QWEN_CHAT_TEMPLATE, QWEN_VISION_TOKENS

    real = _fixture("qwen2_5_vl_3b.json")
    vision = _narrow(real["vision_config"], hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64,
                     depth=2, fullatt_block_indexes=[1])
    rope = dict(real["text_config"]["rope_parameters"], mrope_section=[2, 3, 3])     # scaled to head_dim 16
    text = _narrow(real["text_config"], hidden_size=64, intermediate_size=128, num_attention_heads=4,
                   num_key_value_heads=2, num_hidden_layers=1, vocab_size=len(tokenizer), rope_parameters=rope)
    ids = {k + "_id": tokenizer.convert_tokens_to_ids(v) for k, v in QWEN_VISION_TOKENS.items()}
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(vision_config=vision, text_config=text, **ids)).eval()
    p = real["_processor"]
    image_processor = Qwen2VLImageProcessorPil(min_pixels=p["min_pixels"], max_pixels=p["max_pixels"],
                                               patch_size=p["patch_size"], merge_size=p["merge_size"],
                                               temporal_patch_size=p["temporal_patch_size"])
    processor = image_only_processor_class("qwen2_5_vl")(image_processor=image_processor, tokenizer=tokenizer,
                                                         chat_template=QWEN_CHAT_TEMPLATE)
    return real, model, processor


@pytest.mark.parametrize("size", [(90, 50), (300, 200), (1000, 30)])
def test_qwen25_real_resize_and_token_count(qwen25, size):
    import torch
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from glue_radiollava.core.models import FAMILIES, processor_input_size

    real, model, processor = qwen25
    picture = Image.new("RGB", size, (40, 40, 40))
    inputs = processor(images=[picture], text=[_prompt(processor)], return_tensors="pt")
    h, w = smart_resize(size[1], size[0], factor=28, min_pixels=3136, max_pixels=12845056)
    assert inputs["image_grid_thw"].tolist() == [[1, h // 14, w // 14]]
    assert processor_input_size(processor, FAMILIES["qwen2_5_vl"], *size) == (w, h)
    n_image = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image == (h // 14) * (w // 14) // 4                       # merge 2×2
    if size[0] * size[1] <= 300 * 200:
        with torch.inference_mode():          # the windowed vision tower takes the real window geometry
            model(**dict(inputs))


def test_qwen25_box_in_resized_pixels_maps_through_the_real_resize(qwen25, synthetic_fits):
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.models import FAMILIES, processor_input_size
    from glue_radiollava.core.parsing import parse_boxes
    from glue_radiollava.core.profiles import get_profile, render
    from glue_radiollava.core.skyregions import map_boxes

    _, _, processor = qwen25
    view = render(RadioImage.open(synthetic_fits()).cutout_pixels(20, 60, 110, 110), get_profile("radio-llava"))
    assert view.picture.size == (90, 50)
    size = processor_input_size(processor, FAMILIES["qwen2_5_vl"], *view.picture.size)
    assert size == (84, 56)                                            # 90×50 → smart_resize → 84×56
    t = view.transform.with_input_size(*size)
    text = '[{"bbox_2d": [21, 14, 42, 42], "label": "source"}]'        # quarter..half across, quarter..¾ down
    (box,), warnings = map_boxes(parse_boxes(text, "resized-pixels", transform=t).boxes, t)
    assert not warnings
    assert box.pixel_box == pytest.approx((20 + 22.5 - 0.5, 60 + 12.5 - 0.5, 20 + 45 - 0.5, 60 + 37.5 - 0.5), abs=1e-6)


def test_real_config_benchmark_runs_reduced_and_prints_every_figure():
    """benchmarks/perf/real_config.py end to end on the reduced model (1 layer, narrow), beside nano."""
    import subprocess
    import sys

    from glue_radiollava.core.models import resources_dir

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "real_config.py"
    nano = (resources_dir() / "models" / "nano" / "config.json").is_file()
    cmd = [sys.executable, str(script), "--layers", "1", "--narrow", "--regions", "64", "--dtypes", "fp32",
           "--max-new-tokens", "3"] + ([] if nano else ["--no-nano"])
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"model", "built", "max_new_tokens", "regions", "dtypes", "cases", "ratios", "notes"} <= set(result)
    assert result["built"]["vision_layers"] == result["built"]["text_layers"] == 1
    assert not result["model_kept"] and not Path(result["model_folder"]).exists()   # the temporary model is gone
    cases = {case["model"]: case for case in result["cases"]}
    assert set(cases) == ({"ov-0.5B*", "nano"} if nano else {"ov-0.5B*"})
    for case in cases.values():
        assert "error" not in case, case
        assert {"load_s", "peak_rss_mib", "prefill_s", "decode_tok_s", "prompt_tokens"} <= set(case)
        assert case["region_px"] == 64 and case["new_tokens"] == 3 and case["prefill_s"] > 0
    # the real vision geometry is kept: base + one 384 px tile, 729 tokens each, plus row newlines
    assert cases["ov-0.5B*"]["prompt_tokens"] > 729 + 27 * 28
    if nano:
        assert "fp32/64px 0.5B vs nano" in result["ratios"]
