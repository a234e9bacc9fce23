"""Benchmarks with the tiny model: batched ask/score against the core, runs end to end in both
modes, few-shot, resume, sharded runs gathered, bad input, reports and baselines."""

from __future__ import annotations

import json

import pytest

from benchmarks import runner as brunner
from glue_radiollava.core.batching import ask_batch, score_batch
from glue_radiollava.cli import main
from glue_radiollava.core.assistant import Assistant, Example
from glue_radiollava.core.image import RadioImage
from glue_radiollava.core.tasks import get_task

KEYS = {"per_class", "macro_f1", "accuracy", "n", "unparsed"}
FAST = ["--bootstrap", "30", "--max-new-tokens", "6", "--no-progress"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from training.simulate import SimConfig, write_simulation   # tests may use training/; benchmarks/ may not

    folder = tmp_path_factory.mktemp("bench-run") / "sim"
    write_simulation(folder, 8, seed=5, cfg=SimConfig(size=64, scene="mixed"), progress=False)
    return folder


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batched_ask_and_score_give_what_the_core_gives(tiny_loaded, synthetic_fits):
    import torch

    assistant = Assistant(tiny_loaded)
    image = RadioImage.open(synthetic_fits())
    views = [assistant.view(image.cutout_pixels(*box)) for box in
             [(0, 0, 200, 200), (90, 50, 150, 110), (10, 20, 60, 180)]]      # different sizes: padding
    task = get_task("b2-source-morphology")
    shots = [Example(views[2], task.prompt, "1C-1P")]
    for scores, view in zip(score_batch(assistant, views, task=task, examples=shots), views):
        alone = assistant.score(view, task=task, examples=shots)
        assert scores.labels == alone.labels
        assert scores.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
    for answer, view in zip(ask_batch(assistant, views, task=task, max_new_tokens=5), views):
        alone = assistant.ask(view, task=task, max_new_tokens=5)
        assert answer.text == alone.text and answer.parsed.parsed == alone.parsed.parsed
        # confidence: the geometric-mean probability of the generated tokens, from one forward pass
        inputs = assistant._inputs(view, task.prompt)
        tok = assistant.loaded.tokenizer
        with torch.inference_mode():
            out = assistant.loaded.model.generate(**inputs, max_new_tokens=5, do_sample=False,
                                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = out[0, inputs["input_ids"].shape[1]:].tolist()
        assert len(new) == answer.timings["new_tokens"] == 5                # no EOS within 5 tokens
        ids = torch.cat([inputs.pop("input_ids"), torch.tensor([new])], dim=1)
        inputs["attention_mask"] = torch.ones_like(ids)
        with torch.inference_mode():
            logp = torch.log_softmax(assistant.loaded.model(input_ids=ids, **inputs).logits.float(), -1)
        p0 = ids.shape[1] - len(new)
        mean = logp[0, p0 - 1:-1].gather(1, torch.tensor(new)[:, None]).mean()
        assert 0 < answer.confidence <= 1
        assert answer.confidence == pytest.approx(float(torch.exp(mean)), rel=1e-3)


def test_run_end_to_end_in_both_modes(tiny_model_dir, sim, tmp_path):
    gen, sco = tmp_path / "gen", tmp_path / "score"
    assert main(["bench", "run", "--task", "B1,B3,B7", "--data", str(sim), "--model", str(tiny_model_dir),
                 "--limit", "3", "--batch-size", "2", "--out", str(gen), *FAST]) == 0
    assert main(["bench", "run", "--task", "B1,B6", "--data", str(sim), "--model", str(tiny_model_dir),
                 "--mode", "score", "--limit", "3", "--batch-size", "2", "--shots", "1", "--out", str(sco),
                 *FAST]) == 0
    for folder, codes in ((gen, ["B1", "B3", "B7"]), (sco, ["B1", "B6"])):
        assert {p.name for p in folder.iterdir()} == {"predictions.jsonl", "metrics.json", "run.json"}
        metrics = json.loads((folder / "metrics.json").read_text())
        assert list(metrics) == codes
        recs = _lines(folder / "predictions.jsonl")
        for code in codes:
            m = metrics[code]
            assert KEYS <= set(m) and m["n"] == 3
            assert set(m["per_class"]) == set(m["labels"])
            assert {"precision", "recall", "f1", "support"} <= set(next(iter(m["per_class"].values())))
            mine = [r for r in recs if r["task"] == code]
            assert len(mine) == 3
            if code == "B7":          # unparsed counts questions (one per class and picture)
                bad = sum(not a["parsed"] for r in mine for a in r["answers"].values())
            else:
                bad = sum(not r["parsed"] for r in mine)
            assert m["unparsed"] == bad
            assert m["throughput"]["images"] == 3 and m["throughput"]["images_per_s"] > 0
            assert m["provenance"]["model"]["sha256"] and m["provenance"]["preprocessing"]["name"] == "radio-llava"
        run = json.loads((folder / "run.json").read_text())
        assert run["finished"] and run["model"]["family"] == "llava_onevision"
    score = json.loads((sco / "metrics.json").read_text())
    assert score["B1"]["unparsed"] == 0 and score["B6"]["unparsed"] == 0      # score mode always answers
    assert "hamming_loss" in score["B1"] and "subset_accuracy" in score["B1"]
    assert len(score["B6"]["provenance"]["shot_ids"]) == 1
    recs = _lines(sco / "predictions.jsonl")
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-4 for r in recs if r["task"] == "B6")
    assert not {r["id"] for r in recs if r["task"] == "B6"} & set(score["B6"]["provenance"]["shot_ids"])
    b7 = json.loads((gen / "metrics.json").read_text())["B7"]
    assert b7["mode"] == "generate" and b7["iou_threshold"] == 0.5 and b7["throughput"]["new_tokens"] > 0

    # the report: a markdown table and one bar chart per task, plus a summary
    rep = tmp_path / "report"
    assert main(["bench", "report", str(gen), str(sco), "--out", str(rep)]) == 0
    text = (rep / "report.md").read_text()
    assert "| **AVG** |" in text and "tiny-model" not in text and "score 1-shot" in text
    for name in ("B1.png", "B3.png", "B6.png", "B7.png", "summary.png"):
        assert (rep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_an_interrupted_run(tiny_model_dir, sim, tmp_path):
    out = tmp_path / "run"
    args = ["bench", "run", "--task", "B3", "--data", str(sim), "--model", str(tiny_model_dir), "--mode",
            "score", "--out", str(out), *FAST]
    assert main(args) == 0
    full = _lines(out / "predictions.jsonl")
    # interrupted after two samples, the last line torn
    text = (out / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "predictions.jsonl").write_text("".join(text[:2]) + text[2][:20])
    (out / "metrics.json").unlink()
    assert main(args) == 1                                   # refuses to overwrite without --resume
    assert main(args + ["--resume", "--mode", "generate"]) == 1     # options must match
    assert main(args + ["--resume", "--bootstrap", "7"]) == 1       # … the intervals' resamples too
    assert main(args + ["--resume"]) == 0
    again = _lines(out / "predictions.jsonl")
    assert [r["id"] for r in again] == [r["id"] for r in full]
    assert again[:2] == full[:2]                             # the two finished samples were kept, not redone
    assert json.loads((out / "metrics.json").read_text())["B3"]["n"] == len(full)


def test_sharded_run_is_gathered_by_the_main_process(tiny_model_dir, sim, tmp_path, monkeypatch, fake_state):
    import threading

    out = tmp_path / "sharded"
    barrier = threading.Barrier(2)
    states = {}
    monkeypatch.setattr(brunner, "process_state", lambda device=None: states[threading.current_thread().name])
    results = {}

    def process(index):
        states[threading.current_thread().name] = fake_state(index, barrier)
        opts = brunner.RunOptions(tasks=["B6"], data=str(sim), out=str(out), model=str(tiny_model_dir),
                                  mode="score", bootstrap=0, progress=False)
        results[index] = brunner.run(opts)

    threads = [threading.Thread(target=process, args=(i,), name=f"rank{i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results[1] is None                       # the other process only writes its part
    n = len(json.loads((sim / "frclass.json").read_text())["data"])
    assert results[0]["B6"]["n"] == n and results[0]["B6"]["throughput"]["processes"] == 2
    assert len(_lines(out / "predictions.jsonl")) == n and not list(out.glob("predictions.rank*"))


def test_bad_input_is_a_one_line_error(tiny_model_dir, sim, tmp_path, capsys):
    assert main(["bench", "run", "--task", "B3", "--data", str(sim), "--model", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "a")]) == 1
    assert "no such folder" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"sname": "x", "filepaths": ["gone.fits"], "label": "FR-I"}]}))
    assert main(["bench", "run", "--data", str(bad), "--model", str(tiny_model_dir), "--out",
                 str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "record #1 ('x')" in err and "gone.fits not found" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "run", "--task", "B6", "--data", str(sim), "--model", str(tiny_model_dir),
                 "--shots", "99", "--out", str(tmp_path / "c")]) == 1
    assert "leaves no sample" in capsys.readouterr().err
    # a picture that cannot be rendered stops the run with its record named; what was done is kept
    import numpy as np
    from astropy.io import fits

    good = json.loads((sim / "frclass.json").read_text())["data"][0]
    header = fits.getheader(sim / good["filepaths"][0])
    fits.PrimaryHDU(np.zeros((32, 32), np.float32), header=header).writeto(tmp_path / "flat.fits")
    records = [{**good, "filepaths": [str(sim / good["filepaths"][0])]},
               {"sname": "flat", "filepaths": [str(tmp_path / "flat.fits")], "label": "FR-I"}]
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"data": records}))
    out = tmp_path / "d"
    assert main(["bench", "run", "--data", str(mixed), "--model", str(tiny_model_dir), "--mode", "score",
                 "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "record #2 ('flat')" in err and "blank" in err and "--resume" in err
    assert [r["id"] for r in _lines(out / "predictions.jsonl")] == [good["sname"]]


def test_baselines_write_runs_in_the_same_format(tiny_model_dir, sim, tmp_path):
    isl = tmp_path / "islands"
    assert main(["bench", "baseline", "islands", "--data", str(sim), "--bootstrap", "20", "--out", str(isl)]) == 0
    m = json.loads((isl / "metrics.json").read_text())["B7"]
    assert KEYS <= set(m) and m["unparsed"] == 0 and m["per_class"]["COMPACT"]["support"] > 0
    assert m["per_class"]["COMPACT"]["recall"] > 0.3          # a classical finder finds compact sources
    lp = tmp_path / "probe"
    assert main(["bench", "baseline", "linear-probe", "--task", "B3,B1", "--data", str(sim), "--model",
                 str(tiny_model_dir), "--folds", "2", "--bootstrap", "20", "--out", str(lp)]) == 0
    metrics = json.loads((lp / "metrics.json").read_text())
    assert list(metrics) == ["B3", "B1"] and all(KEYS <= set(v) for v in metrics.values())
    assert metrics["B3"]["provenance"]["features"].startswith("mean over patches")
    rep = tmp_path / "rep"
    assert main(["bench", "report", str(isl), str(lp), "--names", "islands,probe", "--out", str(rep)]) == 0
    assert "| islands | – | – | – |" not in (rep / "report.md").read_text()


def test_islands_baseline_on_lotss(data_dir, tmp_path):
    from benchmarks.baselines import islands

    metrics = islands("lotss", tmp_path / "lotss", n_boot=20, data_root=data_dir)
    m = metrics["B7"]
    assert m["n"] == 2 and m["per_class"]["COMPACT"]["support"] + m["per_class"]["EXTENDED"]["support"] == 34
    assert m["per_class"]["COMPACT"]["f1"] > 0.8
