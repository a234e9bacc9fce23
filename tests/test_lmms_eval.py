"""lmms-eval integration (issue 18): the radiollava model type and the radio task YAMLs run through
lmms-eval's own evaluator give the numbers `radiollava bench run` gives on the same 10 pictures;
the wrapper answers ordinary lmms-eval tasks as the Assistant does; `bench forgetting` writes its
table and chart, and says in one line what is missing (lmms-eval itself, a standard data set)."""

from __future__ import annotations

import json
import sys

import pytest

from glue_radiollava.cli import main

CODES = ["B1", "B3", "B6", "B7"]


@pytest.fixture(scope="module")
def lmms():
    pytest.importorskip("lmms_eval.evaluator", reason="lmms-eval not installed (pip install -e '.[eval]')")
    from benchmarks.lmms import TASKS_DIR, register_model
    from lmms_eval.tasks import TaskManager

    register_model()
    return TaskManager("WARNING", include_path=str(TASKS_DIR))


@pytest.fixture(scope="module")
def sim10(tmp_path_factory):
    from training.simulate import SimConfig, write_simulation   # tests may use training/

    folder = tmp_path_factory.mktemp("lmms") / "sim"
    write_simulation(folder, 10, seed=5, cfg=SimConfig(size=64, scene="mixed"), progress=False)
    return folder


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy shared CPU many times faster for these small models."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def test_radio_yamls_through_lmms_eval_equal_bench_run(lmms, sim10, tmp_path):
    from benchmarks.lmms.model import RadioLlava
    from benchmarks.runner import RunOptions, run
    from lmms_eval.evaluator import simple_evaluate

    lm = RadioLlava(model="nano")
    tasks = [{"task": f"radio_{c.lower()}", "dataset_kwargs": {"data": str(sim10)}} for c in CODES]
    # both capped at 48 new tokens (B7's 512 is slow on a shared CPU; the cap is the same for both)
    res = simple_evaluate(model=lm, tasks=tasks, task_manager=lmms, bootstrap_iters=0, log_samples=True,
                          gen_kwargs="max_new_tokens=48", verbosity="WARNING")
    ours = run(RunOptions(tasks=CODES, data=str(sim10), out=str(tmp_path / "run"), model="nano", bootstrap=0,
                          max_new_tokens=48, progress=False))
    preds = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    for code in CODES:
        got, want = res["results"][f"radio_{code.lower()}"], ours[code]
        assert want["n"] == (10 if code != "B6" else 4)
        assert got["macro_f1,none"] == pytest.approx(want["macro_f1"], abs=1e-12)
        assert got["accuracy,none"] == pytest.approx(want["accuracy"], abs=1e-12)
        assert got["unparsed,none"] == want["unparsed"]
        samples = {s["doc"]["id"]: s["resps"][0][0] for s in res["samples"][f"radio_{code.lower()}"]}
        for rec in (r for r in preds if r["task"] == code):   # the same answer, sample by sample
            if code == "B7":
                assert json.loads(samples[rec["id"]])["answers"] == rec["answers"]
            else:
                assert samples[rec["id"]] == rec["answer"]
    # non-trivial numbers: the embedded model answers most of these correctly
    assert ours["B3"]["accuracy"] >= 0.5 and ours["B7"]["macro_f1"] > 0


def test_wrapper_answers_a_standard_style_task_as_the_assistant(lmms, tiny_loaded, tmp_path):
    """A local generate_until task and a multiple-choice (loglikelihood) one, on the tiny model."""
    import numpy as np
    from PIL import Image

    from benchmarks.lmms.model import RadioLlava
    from glue_radiollava.core.assistant import Assistant
    from lmms_eval.evaluator import simple_evaluate

    rows = []
    for i in range(3):
        path = tmp_path / f"p{i}.png"
        Image.fromarray((np.random.default_rng(i).random((32, 40, 3)) * 255).astype("uint8")).save(path)
        rows.append({"image": str(path), "question": f"What is in picture {i}?", "answer": "A"})
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}}, "test_split": "test",
              "doc_to_visual": lambda d: [Image.open(d["image"]).convert("RGB")],
              "doc_to_text": lambda d, lmms_eval_specific_kwargs=None: d["question"]}
    gen = {"task": "toy_gen", **common, "output_type": "generate_until", "doc_to_target": "answer",
           "generation_kwargs": {"max_new_tokens": 5, "until": []},
           "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}
    assistant = Assistant(tiny_loaded)
    lm = RadioLlava(assistant=assistant)
    from lmms_eval.api.task import ConfigurableTask   # a config dict of an unregistered task loses its name

    res = simple_evaluate(model=lm, tasks=[ConfigurableTask(config=gen)], task_manager=lmms, bootstrap_iters=0,
                          log_samples=True, verbosity="WARNING")
    assert "exact_match,none" in res["results"]["toy_gen"]
    for s in res["samples"]["toy_gen"]:
        view = lm._view(Image.open(s["doc"]["image"]).convert("RGB"))
        assert s["resps"][0][0] == assistant.ask(view, question=s["doc"]["question"], max_new_tokens=5).text
    # loglikelihood, called as lmms-eval calls it (0.7.3's evaluator turns (logprob, greedy) pairs into
    # strings before multiple_choice scoring reads them, for every model: so called directly here)
    from lmms_eval.api.instance import Instance

    lm.task_dict = {"toy": {"test": rows}}
    reqs = [Instance("loglikelihood", (r["question"], " A", common["doc_to_visual"], i, "toy", "test"), idx=0,
                     metadata={"task": "toy", "doc_id": i, "repeats": 1}) for i, r in enumerate(rows)]
    for (lp, greedy), r in zip(lm.loglikelihood(reqs), rows):
        assert lp < 0 and isinstance(greedy, bool)
        # the continuation's log-likelihood: the Assistant's score of it, less the end token's
        view = lm._view(Image.open(r["image"]).convert("RGB"))
        assert lp > assistant.score(view, answers=[" A"], question=r["question"]).logprobs[0]


def test_forgetting_writes_table_and_chart(lmms, sim10, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "forget"
    args = ["bench", "forgetting", "--base", "nano", "--model", f"model={tiny_model_dir}", "--tasks", "radio_b3",
            "--data", str(sim10), "--names", "base,tuned", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "forgetting.json").read_text())
    (row,) = summary["rows"]
    assert row["task"] == "radio_b3" and row["metric"] == "macro_f1"
    assert row["difference"] == pytest.approx(row["model"] - row["base"]) and row["base"] > 0
    assert "| radio_b3 | macro_f1 |" in (out / "forgetting.md").read_text()
    assert (out / "forgetting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    base = json.loads((out / "base.json").read_text())["results"]["radio_b3"]
    assert base["macro_f1,none"] == row["base"]
    capsys.readouterr()
    assert main(args) == 1                                  # never replaces an earlier run silently
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err


def test_missing_standard_dataset_is_one_line(lmms, tmp_path, capsys):
    code = main(["bench", "forgetting", "--base", "nano", "--model", "nano", "--tasks", "mme",
                 "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "mme" in err and "dataset cache" in err and "HF_DATASETS_CACHE" in err
    assert main(["bench", "forgetting", "--base", "nano", "--model", "nano", "--tasks", "no_such_task",
                 "--out", str(tmp_path / "g")]) == 1
    assert "unknown lmms-eval task no_such_task" in capsys.readouterr().err


def test_without_lmms_eval_the_command_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "lmms_eval", None)
    monkeypatch.setitem(sys.modules, "lmms_eval.evaluator", None)
    assert main(["bench", "forgetting", "--base", "nano", "--model", "nano", "--out", str(tmp_path / "f")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -e '.[eval]'" in err
    assert not (tmp_path / "f").exists()


def test_spec_and_task_parsing():
    from benchmarks.forgetting import PAPER_TASKS, parse_spec, parse_tasks
    from glue_radiollava.core.errors import RadioLlavaError

    assert parse_spec("runs/merged") == {"model": "runs/merged"}
    assert parse_spec("model=base,adapter=runs/lora") == {"model": "base", "adapter": "runs/lora"}
    with pytest.raises(RadioLlavaError, match="KEY=VALUE"):
        parse_spec("model=base,colour=red")
    assert parse_tasks(None) == list(PAPER_TASKS) and len(PAPER_TASKS) == 11
    assert parse_tasks("mme, scienceqa_img,mme") == ["mme", "scienceqa_img"]
