"""Fine-tuning (full, lora, qlora), resume, merging, and the bad inputs, with the tiny model."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError
from training.finetune import Collator, load_config, train

FAST = dict(max_steps=6, learning_rate=3e-3, logging_steps=1, save_steps=3, eval_steps=3, per_device_batch_size=4,
            gradient_accumulation_steps=1, gradient_checkpointing=False, warmup_ratio=0.0, lr_scheduler="constant")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four pictures, bright or dark, with a two-turn conversation whose answers follow the picture."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("data")
    (folder / "images").mkdir()
    records = []
    for i in range(4):
        bright = i % 2 == 0
        Image.fromarray(np.full((32, 32, 3), 220 if bright else 20, np.uint8)).save(folder / f"images/{i}.png")
        records.append({"id": f"r{i}", "image": f"images/{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nIs the image bright?\nAnswer concisely: Yes or No."},
            {"from": "gpt", "value": "Yes" if bright else "No"},
            {"from": "human", "value": "Describe it."},
            {"from": "gpt", "value": "A bright field." if bright else "A dark field."}]})
    (folder / "train.json").write_text(json.dumps(records))
    return folder / "train.json"


def losses(out: Path) -> list[float]:
    with open(out / "loss.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
def test_a_few_steps_lower_the_loss(tiny_model_dir, dataset, tmp_path, method):
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    out = train(load_config(None, dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / method),
                                       method=method, **FAST)))
    seen = losses(out)
    assert len(seen) >= 6 and seen[-1] < seen[0] - 0.1, seen
    card = json.loads((out / "training_card.json").read_text())
    assert card["method"] == method and card["steps"] == 6 and card["hyperparameters"]["lora_r"] == 64
    assert (out / "loss.png").stat().st_size > 1000 and (out / "preprocessing.json").is_file()
    assert card["trainable"] < card["parameters"]                    # the vision tower stays frozen
    from glue_radiollava.core.models import load_model

    loaded = load_model(str(out))                                    # the output loads as it is
    assert loaded.family.name == "llava_onevision"


def test_labels_mask_everything_but_the_answers(tiny_loaded, dataset):
    from training.finetune import ConversationDataset, read_examples
    from glue_radiollava.core.profiles import get_profile

    items = ConversationDataset(read_examples(dataset, get_profile(None)), get_profile(None))
    batch = Collator(tiny_loaded.processor, "You are an AI assistant.", 4096)([items[0], items[1]])
    tok = tiny_loaded.tokenizer
    learned = [tok.decode([t for t in row if t != -100]) for row in batch["labels"].tolist()]
    assert learned[0] == "Yes<|im_end|>A bright field.<|im_end|>"
    assert learned[1] == "No<|im_end|>A dark field.<|im_end|>"
    image_id = tiny_loaded.model.config.image_token_index
    assert not ((batch["input_ids"] == image_id) & (batch["labels"] != -100)).any()


def test_resume_continues_from_the_saved_step(tiny_model_dir, dataset, tmp_path):
    options = dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / "run"), method="lora", **FAST)
    train(load_config(None, {**options, "max_steps": 3}))
    first = list(csv.DictReader(open(tmp_path / "run/loss.csv")))
    assert (tmp_path / "run/checkpoints/checkpoint-3").is_dir()
    with pytest.raises(RadioLlavaError, match="resume=true"):
        train(load_config(None, {**options, "max_steps": 6}))
    train(load_config(None, {**options, "max_steps": 6, "resume": True}))
    rows = list(csv.DictReader(open(tmp_path / "run/loss.csv")))[len(first):]
    steps = [int(r["step"]) for r in rows if r["loss"]]
    assert steps and min(steps) == 4 and max(steps) == 6           # continued, not restarted


def _logits(folder_or_model, ids):
    import torch

    from glue_radiollava.core.models import load_model

    model = load_model(folder_or_model).model if isinstance(folder_or_model, (str, Path)) else folder_or_model
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_merges(tiny_model_dir, dataset, tmp_path):
    import torch

    from training.merge import merge_adapter, merge_weighted

    ids = torch.tensor([[5, 17, 33, 2, 90, 41]])
    lora = train(load_config(None, dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / "lora"),
                                        method="lora", **FAST)))
    merged = merge_adapter(lora, tmp_path / "merged")
    assert torch.allclose(_logits(str(merged), ids), _logits(str(lora), ids), atol=1e-4)
    full = train(load_config(None, dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / "full"),
                                        method="full", **FAST)))
    base_logits, full_logits = _logits(str(tiny_model_dir), ids), _logits(str(full), ids)
    assert not torch.allclose(base_logits, full_logits, atol=1e-3)
    zero = merge_weighted(str(tiny_model_dir), full, 0.0, tmp_path / "a0")
    one = merge_weighted(str(tiny_model_dir), full, 1.0, tmp_path / "a1")
    half = merge_weighted(str(tiny_model_dir), full, 0.5, tmp_path / "a05")
    assert torch.allclose(_logits(str(zero), ids), base_logits, atol=1e-6)
    assert torch.allclose(_logits(str(one), ids), full_logits, atol=1e-6)
    mid = _logits(str(half), ids)
    assert not torch.allclose(mid, base_logits, atol=1e-3) and not torch.allclose(mid, full_logits, atol=1e-3)
    assert json.loads((half / "merge_card.json").read_text())["vision_tower"] == "base"
    with pytest.raises(RadioLlavaError, match="between 0"):
        merge_weighted(str(tiny_model_dir), full, 1.5, tmp_path / "bad")
    with pytest.raises(RadioLlavaError, match="not empty"):
        merge_weighted(str(tiny_model_dir), full, 0.5, tmp_path / "a05")


def test_trained_folder_answers_through_radiollava_ask(tiny_model_dir, dataset, tmp_path, capsys, data_dir):
    from glue_radiollava.cli import main

    out = train(load_config(None, dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / "r"),
                                       method="lora", **{**FAST, "max_steps": 2})))
    code = main(["ask", str(data_dir / "lotss_dr1/P205+55-mosaic.fits"), "--box", "100", "100", "164", "164",
                 "--task", "b3-radio-galaxy", "--model", str(out), "--json", "--max-new-tokens", "4"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])   # after the trainer's logs
    assert code == 0 and result["model"]["adapter"] == str(out)


def test_shipped_example_configs_load():
    root = Path(__file__).resolve().parents[1] / "resources" / "configs"
    for name in ("finetune-lora.yaml", "finetune-full.yaml", "finetune-qlora.yaml"):
        config = load_config(root / name)
        assert config.learning_rate == 1e-5 and config.gradient_accumulation_steps == 2
        assert config.warmup_ratio == 0.03 and config.lr_scheduler == "cosine"
    assert load_config(root / "finetune-lora.yaml").lora_alpha == 128


def test_bad_input_is_refused_before_the_run(tiny_model_dir, dataset, tmp_path, monkeypatch):
    base = dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / "x"))
    with pytest.raises(RadioLlavaError, match="config key 'learning_rat' does not exist"):
        load_config(None, {**base, "learning_rat": 1})
    with pytest.raises(RadioLlavaError, match="method 'dora'"):
        load_config(None, {**base, "method": "dora"})
    with pytest.raises(RadioLlavaError, match="not a valid"):
        load_config(None, [f"data={dataset}", "max_steps=many"])
    records = json.loads(dataset.read_text())
    records[1]["image"] = "images/missing.png"
    records[2]["conversations"] = records[2]["conversations"][1:]      # starts with the answer
    bad = dataset.parent / "bad.json"
    bad.write_text(json.dumps(records))
    with pytest.raises(RadioLlavaError, match=r"record r1: image images/missing.png not found.*and \d+ more"):
        train(load_config(None, {**base, "data": str(bad)}))
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(RadioLlavaError, match="needs bitsandbytes"):
        train(load_config(None, {**base, "method": "qlora"}))
    assert not (tmp_path / "x").exists()                            # nothing started


def test_training_prompt_tokens_equal_the_assistants(tiny_loaded, dataset):
    """A record's second question, as training renders it, is token for token what the assistant
    sends when asked that question after the first turn (one prompt function: core.chat)."""
    from PIL import Image

    from glue_radiollava.core.assistant import SYSTEM_PROMPT, Assistant, Turn
    from glue_radiollava.core.profiles import ModelView, get_profile
    from glue_radiollava.core.transform import Transform
    from training.finetune import ConversationDataset, read_examples

    item = ConversationDataset(read_examples(dataset, get_profile(None)), get_profile(None))[0]
    (q1, a1), (q2, _) = item["turns"]
    trained = Collator(tiny_loaded.processor, SYSTEM_PROMPT, 4096)([item])["input_ids"][0].tolist()
    picture = item["picture"] if isinstance(item["picture"], Image.Image) else Image.fromarray(item["picture"])
    view = ModelView(picture, Transform.identity(*picture.size), get_profile(None))
    asked = Assistant(tiny_loaded)._inputs(view, q2, history=[Turn(q1, a1)])["input_ids"][0].tolist()
    assert len(asked) < len(trained) and trained[:len(asked)] == asked
    assert tiny_loaded.tokenizer.decode(asked).rstrip().endswith("assistant")


def test_resume_skips_a_checkpoint_torn_while_saving(tiny_model_dir, dataset, tmp_path, capsys):
    """Killed while checkpoint-9 was being written: resume continues from checkpoint-6 and says so."""
    options = dict(base=str(tiny_model_dir), data=str(dataset), out=str(tmp_path / "run"), method="lora", **FAST)
    train(load_config(None, options))
    torn = tmp_path / "run/checkpoints/checkpoint-9"
    torn.mkdir()
    (torn / "config.json").write_text("{}")                     # the weights and trainer state never came
    train(load_config(None, {**options, "max_steps": 9, "resume": True}))
    assert "checkpoint-9 was not completely written" in capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "run/loss.csv")))
    steps = [int(r["step"]) for r in rows if r["loss"]]
    assert steps[-3:] == [7, 8, 9]                               # continued from step 6
    assert (tmp_path / "run/checkpoints/incomplete-checkpoint-9/config.json").is_file()   # kept, set aside


def test_ctrl_c_says_where_to_resume_and_exits_130(tiny_model_dir, dataset, tmp_path, monkeypatch, capsys):
    from transformers import Trainer

    from glue_radiollava.cli import main

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "train", interrupted)
    config = tmp_path / "c.yaml"
    config.write_text(f"base: {tiny_model_dir}\ndata: {dataset}\nout: {tmp_path / 'run'}\nmethod: lora\n"
                      "save_steps: 7\n")
    assert main(["train", "--config", str(config)]) == 130
    err = capsys.readouterr().err
    assert "no checkpoint was saved yet" in err and "save_steps=7" in err
