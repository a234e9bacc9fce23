"""The tiny model end to end: load, ask, stream, cancel, score, LoRA adapter, 4-bit; and bad models."""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest

from glue_radiollava.core.assistant import Assistant, Example, Turn
from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.models import ModelSpec, detect_family, load_model, weights_sha256

LORA_TARGETS = r".*language_model.*\.(q|k|v|o|gate|up|down)_proj|.*multi_modal_projector\.linear_[12]"


@pytest.fixture(scope="module")
def assistant(tiny_loaded):
    return Assistant(tiny_loaded)


@pytest.fixture()
def view(assistant, synthetic_fits):
    image = RadioImage.open(synthetic_fits())
    return assistant.view(image.cutout_pixels(90, 50, 150, 110))


def test_tiny_model_folder_is_a_normal_hf_model(tiny_model_dir, tiny_loaded):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
            "chat_template.jinja", "preprocessing.json"} <= names
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "llava_onevision"
    assert config["text_config"]["hidden_size"] >= 64 and config["vision_config"]["hidden_size"] >= 64
    assert tiny_loaded.family.name == "llava_onevision" and tiny_loaded.box_convention == "yolo"
    assert tiny_loaded.device == "cpu" and tiny_loaded.dtype == "fp32"
    assert tiny_loaded.profile.name == "radio-llava"
    assert len(tiny_loaded.sha256) == 64 and tiny_loaded.sha256 == weights_sha256(tiny_model_dir)


def test_ask_greedy_is_deterministic_and_carries_provenance(assistant, view):
    a = assistant.ask(view, task="b3-radio-galaxy", max_new_tokens=6)
    b = assistant.ask(view, task="b3-radio-galaxy", max_new_tokens=6)
    assert a.text == b.text and a.timings["new_tokens"] >= 1
    assert a.question.startswith("Do you see any likely radio galaxy")
    d = a.to_dict()
    assert d["model"]["family"] == "llava_onevision" and d["preprocessing"]["profile"] == "radio-llava"
    assert d["region"]["pixel_box"] == [90, 50, 150, 110] and d["region"]["frame"] == "icrs"
    # a random model answers nonsense: when it is unparsed it says so, never dropped silently
    assert a.parsed.kind == "yesno"
    assert a.parsed.parsed == (not any("could not parse" in w for w in a.warnings))


def test_stream_yields_the_answer_text(assistant, view):
    chunks = []
    gen = assistant.stream(view, question="Describe the image.", max_new_tokens=8)
    while True:
        try:
            chunks.append(next(gen))
        except StopIteration as stop:
            answer = stop.value
            break
    assert "".join(chunks).strip() == answer.text


def test_cancel_stops_generation(assistant, view):
    cancel = threading.Event()
    seen = []

    def on_text(chunk):
        seen.append(chunk)
        cancel.set()                   # stop after the first piece of text

    full = assistant.ask(view, question="Describe the image.", max_new_tokens=40)
    answer = assistant.ask(view, question="Describe the image.", max_new_tokens=40,
                           on_text=on_text, cancel=cancel)
    assert answer.cancelled and answer.timings["new_tokens"] < max(full.timings["new_tokens"], 2)


def test_multi_turn_and_few_shot_put_every_picture_in_the_prompt(assistant, view):
    ex = Example(view, "Which class?", "FR-II")
    inputs = assistant._inputs(view, "And now?", history=[Turn("First question", "First answer")],
                               examples=[ex, ex])
    image_id = assistant.loaded.model.config.image_token_index
    ids = inputs["input_ids"][0].tolist()
    text = assistant.loaded.tokenizer.decode(ids)
    assert text.count("First answer") == 1 and text.count("FR-II") == 2
    assert inputs["pixel_values"].shape[0] == 3 and image_id in ids
    answer = assistant.ask(view, "And now?", history=[Turn("First question", "First answer")],
                           examples=[ex], max_new_tokens=3)
    assert answer.timings["new_tokens"] >= 1


def test_score_matches_unbatched_likelihoods(assistant, view):
    import torch

    scores = assistant.score(view, task="b5-peculiarity")
    assert scores.labels == ["ORDINARY", "COMPLEX", "PECULIAR"]
    assert sum(scores.probs) == pytest.approx(1.0) and scores.best in scores.labels
    # recompute one answer's log-likelihood alone (no padding): the batched pass must agree
    tok = assistant.loaded.tokenizer
    inputs = assistant._inputs(view, scores and assistant.question_for(None, "b5-peculiarity")[0])
    ids = inputs.pop("input_ids")[0].tolist()
    inputs.pop("attention_mask")
    answer = tok.encode("COMPLEX", add_special_tokens=False) + [tok.eos_token_id]
    row = torch.tensor([ids + answer])
    with torch.inference_mode():
        logp = torch.log_softmax(assistant.loaded.model(input_ids=row, **inputs).logits.float(), -1)
    manual = sum(float(logp[0, len(ids) - 1 + k, t]) for k, t in enumerate(answer))
    assert scores.logprobs[1] == pytest.approx(manual, abs=1e-4)


def test_score_needs_answers(assistant, view):
    with pytest.raises(RadioLlavaError, match="allowed answers"):
        assistant.score(view, question="Describe it.")


def _make_adapter(tiny_model_dir, folder, seed=0):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(folder)
    return peft_model


def test_lora_adapter_loads_and_changes_the_model(tiny_model_dir, tiny_loaded, tmp_path, view):
    import torch

    peft_model = _make_adapter(tiny_model_dir, tmp_path / "adapter")
    loaded = load_model(ModelSpec(str(tiny_model_dir), adapter=str(tmp_path / "adapter")))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        with_adapter = loaded.model(input_ids=ids).logits
        reference = peft_model.eval()(input_ids=ids).logits
        base = tiny_loaded.model(input_ids=ids).logits
    assert torch.allclose(with_adapter, reference, atol=1e-5)
    assert not torch.allclose(with_adapter, base, atol=1e-3)
    answer = Assistant(loaded).ask(view, task="b6-fr-class", max_new_tokens=3)
    assert answer.to_dict()["model"]["adapter"] == str(tmp_path / "adapter")


def test_adapter_for_another_base_is_refused(tiny_model_dir, tmp_path):
    from glue_radiollava.core.tiny import build_tiny

    other = build_tiny(tmp_path / "other", hidden=96)
    _make_adapter(other, tmp_path / "adapter")
    with pytest.raises(RadioLlavaError, match="does not fit the model"):
        load_model(ModelSpec(str(tiny_model_dir), adapter=str(tmp_path / "adapter")))
    with pytest.raises(RadioLlavaError, match="no adapter_config.json"):
        load_model(ModelSpec(str(tiny_model_dir), adapter=str(tmp_path)))


def test_4bit_keeps_vision_tower_and_projector_in_full_precision(tiny_model_dir, view):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    loaded = load_model(ModelSpec(str(tiny_model_dir), quantize="4bit"))
    quantized = {n for n, m in loaded.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert quantized and all(".language_model." in n for n in quantized)
    assert not any("vision_tower" in n or "multi_modal_projector" in n or n == "lm_head" for n in quantized)
    answer = Assistant(loaded).ask(view, task="b4-ring-artefact", max_new_tokens=3)
    assert answer.timings["new_tokens"] >= 1 and answer.to_dict()["model"]["quantize"] == "4bit"


def test_quantization_without_bitsandbytes_is_a_clear_error(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(RadioLlavaError, match="needs bitsandbytes"):
        load_model(ModelSpec(str(tiny_model_dir), quantize="4bit"))


def test_bad_model_folders(tmp_path):
    with pytest.raises(RadioLlavaError, match="no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(RadioLlavaError, match="no such folder"):
        load_model(str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RadioLlavaError, match="unreadable"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(RadioLlavaError, match="not supported"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_qwen", "mm_vision_tower": "x"}))
    with pytest.raises(RadioLlavaError, match="radiollava model convert"):
        detect_family(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    with pytest.raises(RadioLlavaError, match="cannot load"):
        load_model(str(tmp_path))


def test_hub_id_offline_says_where_to_put_the_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(RadioLlavaError, match="--model DIR"):
        load_model("some-org/some-model")


def test_processor_falls_back_without_torchvision(tiny_loaded):
    # AutoProcessor needs torchvision for LLaVA-OneVision's video processor; the image-only
    # processor must keep the image-token expansion (16 patch tokens per 32 px crop here)
    proc = tiny_loaded.processor
    assert proc.num_image_tokens == 16 and proc.chat_template
    picture = np.zeros((32, 32, 3), np.uint8)
    from PIL import Image

    out = proc(images=[Image.fromarray(picture)], text=["<image>\nhi"], return_tensors="pt")
    image_id = tiny_loaded.model.config.image_token_index
    assert int((out["input_ids"] == image_id).sum()) >= 16
