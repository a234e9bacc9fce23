"""`radiollava model convert`: LLaVA-NeXT-format checkpoints and LoRA adapters → transformers layout.

The tiny model is written back into the ORIGINAL LLaVA-NeXT layout by a helper here that applies the
inverse naming on its own (it does not use the converter's tables), then converted, loaded with the
core's ``load_model`` and compared logit by logit with the tiny model on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError

ATOL = 1e-5
SIGLIP_HUB = "google/siglip-so400m-patch14-384"
# transformers 5.x (in-memory) prefix → LLaVA-NeXT prefix; written from the known facts, independently
# of glue_radiollava.core.convert.
INVERSE = (
    ("model.vision_tower.", "model.vision_tower.vision_tower.vision_model."),
    ("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
    ("model.multi_modal_projector.linear_2.", "model.mm_projector.2."),
    ("model.image_newline", "model.image_newline"),
    ("model.language_model.", "model."),
    ("lm_head.", "lm_head."),
)
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Any radio galaxy?"}]}]
LEAF_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Qwen2's own template: text content only (a list of parts does not render).
QWEN2_TEXT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def to_original(key: str) -> str:
    for new, old in INVERSE:
        if key == new or key.startswith(new):
            return old + key[len(new):]
    raise AssertionError(f"no original name for {key}")


# ----------------------------------------------------------------------------- the original layout
def _hf_state(tiny_dir: Path) -> dict:
    from transformers import LlavaOnevisionForConditionalGeneration

    model = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_dir)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _original_config(tiny_dir: Path, pinpoints) -> dict:
    hf = json.loads((tiny_dir / "config.json").read_text())
    text = hf["text_config"]
    cfg = {k: text[k] for k in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "hidden_act", "max_position_embeddings", "rms_norm_eps", "vocab_size", "max_window_layers",
        "use_sliding_window", "sliding_window", "attention_dropout", "initializer_range", "eos_token_id")}
    cfg.update({
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava", "torch_dtype": "float32",
        "rope_theta": text["rope_parameters"]["rope_theta"], "rope_scaling": None,
        "tie_word_embeddings": False, "mm_vision_tower": SIGLIP_HUB, "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": 64, "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "spatial_unpad", "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
        "mm_spatial_pool_mode": "bilinear", "mm_newline_position": "grid",
        "image_aspect_ratio": "anyres_max_1", "image_grid_pinpoints": pinpoints,
        "tokenizer_model_max_length": 32768, "tokenizer_padding_side": "right", "use_mm_proj": True,
    })
    return cfg


def _write_tokenizer(tiny_dir: Path, out: Path) -> None:
    """The tiny tokenizer as a LLaVA-NeXT checkpoint ships it: Qwen2 class, text-only chat template."""
    shutil.copy(tiny_dir / "tokenizer.json", out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<pad>",
        "bos_token": None, "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "model_max_length": 32768,
        "padding_side": "right", "chat_template": QWEN2_TEXT_TEMPLATE}))


def _save_shards(state: dict, out: Path, fmt: str, index: bool = True) -> list[str]:
    import torch
    from safetensors.torch import save_file

    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    ext = "safetensors" if fmt == "safetensors" else "bin"
    stem = "model" if fmt == "safetensors" else "pytorch_model"
    names, weight_map = [], {}
    for i, part in enumerate(halves, 1):
        name = f"{stem}-{i:05d}-of-00002.{ext}"
        tensors = {k: state[k].contiguous() for k in part}
        if fmt == "safetensors":
            save_file(tensors, str(out / name), metadata={"format": "pt"})
        else:
            torch.save(tensors, out / name)
        names.append(name)
        weight_map.update(dict.fromkeys(part, name))
    if index:
        (out / f"{stem}.{ext}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return names


def write_original(tiny_dir: Path, out: Path, fmt: str = "safetensors", pinpoints="(1x1),(1x1)") -> Path:
    """The tiny model in the LLaVA-NeXT layout: mm_* config, original names, 2 shards + index, tokenizer."""
    out.mkdir(parents=True)
    state = {to_original(k): v for k, v in _hf_state(tiny_dir).items()}
    _save_shards(state, out, fmt)
    (out / "config.json").write_text(json.dumps(_original_config(tiny_dir, pinpoints), indent=1))
    _write_tokenizer(tiny_dir, out)
    return out


def write_vision_folder(tiny_dir: Path, out: Path, **changes) -> Path:
    """A hub-like SigLIP folder: the full config (27-layer style: one layer more than the weights)."""
    vision = json.loads((tiny_dir / "config.json").read_text())["vision_config"]
    vision.update(num_hidden_layers=vision["num_hidden_layers"] + 1, **changes)
    vision.pop("vision_use_head", None)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"model_type": "siglip", "vision_config": vision,
                                                 "text_config": {"hidden_size": 64}}))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
        "resample": 3, "rescale_factor": 1 / 255, "size": {"height": 32, "width": 32}}))
    return out


def write_vision_json(tiny_dir: Path, path: Path, **changes) -> Path:
    vision = json.loads((tiny_dir / "config.json").read_text())["vision_config"]
    vision.update(changes)
    path.write_text(json.dumps(vision))
    return path


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def original(tiny_model_dir, work) -> Path:
    return write_original(tiny_model_dir, work / "llava-next")


@pytest.fixture(scope="module")
def vision_dir(tiny_model_dir, work) -> Path:
    return write_vision_folder(tiny_model_dir, work / "siglip")


@pytest.fixture(scope="module")
def converted(original, vision_dir, work):
    from glue_radiollava.core.convert import convert

    return convert(original, work / "converted", vision_config=vision_dir)


@pytest.fixture(scope="module")
def inputs(tiny_loaded):
    """One picture and a question, through the tiny model's own processor."""
    from PIL import Image

    rng = np.random.default_rng(3)
    picture = Image.fromarray(np.repeat(rng.integers(0, 255, (40, 48, 1), dtype=np.uint8), 3, axis=2))
    prompt = tiny_loaded.processor.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    return picture, prompt, dict(tiny_loaded.processor(images=picture, text=prompt, return_tensors="pt"))


def _logits(model, inputs) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(**inputs).logits.float().numpy()


def _fails(src, dst, match: str, **kwargs) -> str:
    from glue_radiollava.core.convert import convert

    with pytest.raises(RadioLlavaError, match=match) as info:
        convert(src, dst, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert not Path(dst).exists(), "a failed conversion left DST behind"
    assert not list(Path(dst).parent.glob(f".{Path(dst).name}.*")), "a failed conversion left its temp folder"
    return message


# ----------------------------------------------------------------------------- full checkpoints
def test_converted_model_matches_tiny(converted, tiny_loaded, inputs):
    from glue_radiollava.core.models import ModelSpec, load_model

    assert converted.kind == "model" and converted.files == 1
    loaded = load_model(ModelSpec(str(converted.dst)))
    assert loaded.family.name == "llava_onevision"
    assert loaded.profile.name == "radio-llava"
    config = loaded.model.config
    assert config.vision_feature_layer == -1 and config.vision_feature_select_strategy == "full"
    assert config.vision_config.num_hidden_layers == 2          # hub config had 3: LLaVA-NeXT drops one
    assert config.image_grid_pinpoints == [[32, 32]] and config.vision_aspect_ratio == "anyres_max_1"
    assert config.image_token_index == tiny_loaded.model.config.image_token_index
    assert any("drops the last" in n for n in converted.notes)
    assert any("renders text only" in n for n in converted.notes)   # Qwen2's text template was replaced
    assert list(loaded.processor.image_processor.image_mean) == [0.5, 0.5, 0.5]   # from the SigLIP folder
    delta = np.abs(_logits(loaded.model, inputs[2]) - _logits(tiny_loaded.model, inputs[2])).max()
    assert delta < ATOL, f"max |Δlogit| {delta}"
    # the converted processor builds the same token sequence (chat template, image-token expansion)
    picture, prompt, ref = inputs
    own = loaded.processor.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert own == prompt
    ids = loaded.processor(images=picture, text=own, return_tensors="pt")["input_ids"]
    assert ids.tolist() == ref["input_ids"].tolist()
    record = json.loads((converted.dst / "radiollava_conversion.json").read_text())
    assert record["kind"] == "model" and record["notes"] == converted.notes


def test_bin_shards_load_safely_and_match(tiny_model_dir, tiny_loaded, inputs, work, monkeypatch):
    import torch

    from glue_radiollava.core.convert import convert
    from glue_radiollava.core.models import load_model

    src = write_original(tiny_model_dir, work / "bin-original", fmt="bin", pinpoints=[[32, 32]])
    vision = write_vision_json(tiny_model_dir, work / "siglip-vision.json")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    result = convert(src, work / "bin-converted", vision_config=vision, dtype="fp32", max_shard_bytes=200_000)
    monkeypatch.undo()
    assert calls and all(c is True for c in calls)
    assert result.files > 1 and (result.dst / "model.safetensors.index.json").is_file()
    loaded = load_model(str(result.dst))
    delta = np.abs(_logits(loaded.model, inputs[2]) - _logits(tiny_loaded.model, inputs[2])).max()
    assert delta < ATOL, f"max |Δlogit| {delta}"


def test_cli_wiring_and_bf16(original, vision_dir, work, capsys):
    from safetensors import safe_open

    from glue_radiollava.cli import add_convert_parser

    parser = argparse.ArgumentParser(prog="radiollava model")
    add_convert_parser(parser.add_subparsers(dest="model_command", required=True))
    dst = work / "bf16"
    args = parser.parse_args(["convert", str(original), str(dst), "--vision-config", str(vision_dir),
                              "--dtype", "bf16", "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"converted the model into {dst}" in out and "note:" in out
    with safe_open(str(dst / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    assert json.loads((dst / "config.json").read_text())["dtype"] == "bfloat16"
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", str(original), str(dst), "--dtype", "int8"])


def test_tokenizer_without_image_tokens_grows_embeddings(tiny_loaded, original, vision_dir, work):
    """A stock Qwen2 tokenizer has no <image>/<video>: they are added and the embeddings grown."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    from glue_radiollava.core.convert import convert
    from glue_radiollava.core.models import load_model

    src = work / "no-image-token"
    shutil.copytree(original, src)
    words = [f"w{i}" for i in range(597)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])   # 600 = the model's vocab
    tok.save(str(src / "tokenizer.json"))
    config = json.loads((src / "tokenizer_config.json").read_text())
    config.update(pad_token="<|endoftext|>", chat_template=None)
    (src / "tokenizer_config.json").write_text(json.dumps(config))

    result = convert(src, work / "no-image-token-hf", vision_config=vision_dir)
    loaded = load_model(str(result.dst))
    cfg = loaded.model.config
    assert (cfg.image_token_index, cfg.video_token_index) == (600, 601)
    assert cfg.text_config.vocab_size == 640 and loaded.tokenizer.image_token == "<image>"
    assert any("no chat template" in n for n in result.notes)
    embed = loaded.model.get_input_embeddings().weight.detach()
    assert torch.allclose(embed[600:], embed[:600].mean(0).expand(40, -1), atol=1e-6)
    ids = torch.tensor([[7, 8, 9, 10, 11]])
    delta = np.abs(_logits(loaded.model, {"input_ids": ids})[..., :600]
                   - _logits(tiny_loaded.model, {"input_ids": ids})).max()
    assert delta < ATOL
    from PIL import Image

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "w1 w2"}]}]
    prompt = loaded.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    picture = Image.new("RGB", (32, 32), (90, 90, 90))
    batch = loaded.processor(images=picture, text=prompt, return_tensors="pt")
    assert (batch["input_ids"] == 600).sum() > 0
    assert _logits(loaded.model, dict(batch)).shape[-1] == 640


def test_loader_hints_the_convert_command(original):
    from glue_radiollava.core.models import load_model

    with pytest.raises(RadioLlavaError) as info:
        load_model(str(original))
    assert f"radiollava model convert {original} {original}-hf" in str(info.value)


def test_checkpoint_without_lm_head_ties_it(original, vision_dir, tmp_path):
    """Small Qwen2 models (0.5B) tie the LM head to the embeddings and save no lm_head.weight."""
    import torch
    from safetensors.torch import load_file, save_file

    from glue_radiollava.core.convert import convert
    from glue_radiollava.core.models import load_model

    src = _variant(original, tmp_path)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    shard = src / index["weight_map"].pop("lm_head.weight")
    state = load_file(str(shard))
    del state["lm_head.weight"]
    save_file(state, str(shard), metadata={"format": "pt"})
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    result = convert(src, tmp_path / "tied", vision_config=vision_dir)
    assert any("tied" in n for n in result.notes)
    model = load_model(str(result.dst)).model
    assert model.config.tie_word_embeddings
    assert torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)


# ----------------------------------------------------------------------------- LoRA adapters
def test_adapter_converts_and_loads_on_converted_base(tiny_model_dir, converted, inputs, work):
    """peft LoRA on original names + non_lora_trainables.bin (projector, image_newline), as LLaVA-NeXT
    saves them; converted, then loaded with the core's load_model on the converted base."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import LlavaOnevisionForConditionalGeneration

    from glue_radiollava.core.convert import convert
    from glue_radiollava.core.models import ModelSpec, load_model

    base = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    torch.manual_seed(7)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=LEAF_TARGETS, init_lora_weights=False,
                      task_type="CAUSAL_LM")
    model = get_peft_model(base, lora).eval()
    with torch.no_grad():   # fully trained parts, kept by LLaVA-NeXT in non_lora_trainables.bin
        for p in base.model.multi_modal_projector.parameters():
            p.add_(0.05 * torch.randn_like(p))
        base.model.image_newline.add_(0.5 * torch.randn_like(base.model.image_newline))
    reference = _logits(model, inputs[2])

    src = work / "llava-next-lora"
    model.save_pretrained(src)                       # adapter_config.json (then weights replaced below)
    (src / "adapter_model.safetensors").unlink()
    prefix = "base_model.model."
    lora_state = {prefix + to_original(k[len(prefix):]): v.clone()
                  for k, v in get_peft_model_state_dict(model).items()}
    assert any(".vision_tower.vision_tower.vision_model." in k for k in lora_state)  # leaf names hit SigLIP
    torch.save(lora_state, src / "adapter_model.bin")
    trained = {f"{prefix}{to_original('model.multi_modal_projector.' + n)}": p.detach().clone()
               for n, p in base.model.multi_modal_projector.named_parameters()}
    trained[f"{prefix}model.image_newline"] = base.model.image_newline.detach().clone()
    torch.save(trained, src / "non_lora_trainables.bin")
    llava_config = {"mm_vision_tower": SIGLIP_HUB, "mm_projector_type": "mlp2x_gelu"}
    (src / "config.json").write_text(json.dumps(llava_config))

    result = convert(src, work / "lora-hf")
    assert result.kind == "adapter"
    config = json.loads((result.dst / "adapter_config.json").read_text())
    assert sorted(config["modules_to_save"]) == ["model.multi_modal_projector.linear_1",
                                                 "model.multi_modal_projector.linear_2"]
    loaded = load_model(ModelSpec(str(converted.dst), adapter=str(result.dst)))
    delta = np.abs(_logits(loaded.model, inputs[2]) - reference).max()
    assert delta < ATOL, f"max |Δlogit| {delta}"


# ----------------------------------------------------------------------------- bad input
def _variant(original: Path, tmp_path: Path, name: str = "variant") -> Path:
    dst = tmp_path / name
    shutil.copytree(original, dst)
    return dst


def test_neither_layout(tmp_path, tiny_model_dir):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    _fails(tmp_path / "bert", tmp_path / "out", "neither a LLaVA-NeXT checkpoint")
    (tmp_path / "empty").mkdir()
    _fails(tmp_path / "empty", tmp_path / "out", "no config.json and no adapter_config.json")
    _fails(tmp_path / "absent", tmp_path / "out", "no such folder")
    _fails(tiny_model_dir, tmp_path / "out", "already a transformers model")


def test_missing_shards(original, vision_dir, tmp_path):
    src = _variant(original, tmp_path)
    (src / "model-00002-of-00002.safetensors").unlink()
    _fails(src, tmp_path / "out", "model-00002-of-00002.safetensors listed in model.safetensors.index.json "
           "is missing", vision_config=vision_dir)
    (src / "model.safetensors.index.json").unlink()
    _fails(src, tmp_path / "out", "shard model-00002-of-00002.safetensors is missing",
           vision_config=vision_dir)


def _spy_flushes(monkeypatch) -> list:
    from glue_radiollava.core.convert import shards as convert_module

    flushed = []
    real_flush = convert_module._ShardWriter.flush
    monkeypatch.setattr(convert_module._ShardWriter, "flush",
                        lambda self: (flushed.append(len(self.pending)), real_flush(self)))
    return flushed


def test_shape_mismatch_found_before_writing(original, vision_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file, save_file

    src = _variant(original, tmp_path)
    first = src / "model-00001-of-00002.safetensors"
    state = load_file(str(first))
    key = "model.layers.1.mlp.up_proj.weight"
    state[key] = torch.zeros(130, 64)
    save_file(state, str(first), metadata={"format": "pt"})
    flushed = _spy_flushes(monkeypatch)
    message = _fails(src, tmp_path / "out", "has shape", vision_config=vision_dir, max_shard_bytes=1)
    assert key in message and "[130, 64]" in message and "config.json" in message
    assert not any(flushed), "safetensors shapes are known from the headers: nothing should be written"


def test_half_written_dst_is_removed(tiny_model_dir, vision_dir, tmp_path, monkeypatch):
    """.bin shards with an index: a bad tensor in the second shard is found while streaming."""
    import torch

    src = write_original(tiny_model_dir, tmp_path / "bin-original", fmt="bin")
    second = src / "pytorch_model-00002-of-00002.bin"
    state = torch.load(second, weights_only=True)
    key = "model.vision_tower.vision_tower.vision_model.post_layernorm.weight"
    state[key] = torch.ones(66)
    torch.save(state, second)
    flushed = _spy_flushes(monkeypatch)
    message = _fails(src, tmp_path / "out", "vision config .* does not match the weights",
                     vision_config=vision_dir, max_shard_bytes=1)
    assert key in message and "[66]" in message
    assert any(flushed), "the mismatch should be found after some shards were written"


def test_vision_config_not_matching_weights(original, tiny_model_dir, tmp_path):
    wide = write_vision_json(tiny_model_dir, tmp_path / "wide.json", hidden_size=32, intermediate_size=64)
    msg = _fails(original, tmp_path / "out", "vision config .*wide.json does not match the weights",
                 vision_config=wide)
    assert "--vision-config" in msg
    deep = write_vision_json(tiny_model_dir, tmp_path / "deep.json", num_hidden_layers=5)
    _fails(original, tmp_path / "out", "5 layers, the checkpoint 2", vision_config=deep)
    _fails(original, tmp_path / "out", "no such file or folder", vision_config=tmp_path / "nowhere.json")


def test_no_vision_config_offline(original, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = _fails(original, tmp_path / "out", "pass --vision-config")
    assert SIGLIP_HUB in msg


def test_hub_download_only_when_asked(original, tmp_path, monkeypatch):
    """Without --allow-download only the local hub cache is read; with it, the hub is asked too."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_download(repo, filename, local_files_only=False, **_):
        calls.append((repo, filename, local_files_only))
        raise OSError("not cached and no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    msg = _fails(original, tmp_path / "out", "pass --vision-config")
    assert "--allow-download" in msg
    assert calls and all(local for _, _, local in calls)
    calls.clear()
    msg = _fails(original, tmp_path / "out2", "the hub cannot be reached", allow_download=True)
    assert (SIGLIP_HUB, "config.json", False) in calls
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_unsupported_projector_and_existing_dst(original, vision_dir, tmp_path):
    src = _variant(original, tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "mm_projector_type": "linear"}))
    _fails(src, tmp_path / "out", "mm_projector_type 'linear' is not supported", vision_config=vision_dir)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    from glue_radiollava.core.convert import convert

    with pytest.raises(RadioLlavaError, match="already exists"):
        convert(original, taken, vision_config=vision_dir)
    assert (taken / "keep.txt").read_text() == "mine"


def test_pickled_objects_are_refused(original, vision_dir, tmp_path):
    import torch

    src = tmp_path / "pickled"
    src.mkdir()
    shutil.copy(original / "config.json", src / "config.json")
    payload = {"model.norm.weight": torch.zeros(2), "payload": argparse.Namespace(x=1)}
    torch.save(payload, src / "pytorch_model.bin")
    _fails(src, tmp_path / "out", "never unpickled", vision_config=vision_dir)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    _fails(adapter, tmp_path / "out", "no adapter_model.safetensors or adapter_model.bin")
