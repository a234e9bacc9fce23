"""Tests for the task catalogue (core.tasks) and the answer parsers (core.parsing)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from glue_radiollava.core.parsing import (
    PictureBox, format_yolo_boxes, parse_answer, parse_boxes, parse_labels, parse_yesno,
)
from glue_radiollava.core.tasks import Task, TaskError, get_task, load_tasks

BENCHMARKS = ["b1-extended-diffuse", "b2-source-morphology", "b3-radio-galaxy",
              "b4-ring-artefact", "b5-peculiarity", "b6-fr-class"]
BOX_TASKS = ["boxes-compact", "boxes-extended", "boxes-extended-multisland",
             "boxes-spurious", "boxes-radio-galaxy", "boxes-flagged", "boxes-fr-i", "boxes-fr-ii",
             "boxes-fr-x", "boxes-c", "boxes-r", "boxes-pec"]
B1 = ("EXTENDED", "DIFFUSE", "DIFFUSE-LARGE")
NEGATIVE = "The image does not contain compact radio sources."


# ---------------------------------------------------------------- catalogue


def test_catalogue_names_and_order() -> None:
    assert list(load_tasks()) == ["describe", *BENCHMARKS, "blank-border", *BOX_TASKS]


def test_catalogue_fields() -> None:
    tasks = load_tasks()
    assert tasks["describe"].kind == "text"
    assert "Can you provide a brief description of the image?" in tasks["describe"].prompt
    b1 = tasks["b1-extended-diffuse"]
    assert (b1.kind, b1.labels, b1.none_label, b1.benchmark) == ("multi", B1, "NONE", "B1")
    b2 = tasks["b2-source-morphology"]
    assert b2.labels == ("1C-1P", "1C-2P", "1C-3P", "2C-2P", "2C-3P", "3C-3P")
    assert "1C-2P: single-island sources having two" in b2.prompt and "1C-2C" not in b2.prompt
    assert tasks["b3-radio-galaxy"].prompt == (
        "Do you see any likely radio galaxy with an extended morphology in the image?\n"
        "Answer concisely: Yes or No."
    )
    assert tasks["b4-ring-artefact"].labels == ("Yes", "No")
    assert tasks["b5-peculiarity"].labels == ("ORDINARY", "COMPLEX", "PECULIAR")
    assert tasks["b6-fr-class"].labels == ("FR-I", "FR-II")
    assert tasks["b6-fr-class"].prompt.startswith("### Context: Consider these morphological")
    assert "\n\n### Question: Which of these" in tasks["b6-fr-class"].prompt
    compact = tasks["boxes-compact"]
    assert compact.prompt == (
        "Please provide the bounding box coordinates of all compact sources present in the image."
    )
    assert (compact.box_class, compact.negative_answer) == ("COMPACT", NEGATIVE)
    assert [tasks[n].box_class for n in BOX_TASKS] == [
        "COMPACT", "EXTENDED", "EXTENDED-MULTISLAND", "SPURIOUS", "RADIO-GALAXY",
        "FLAGGED", "FR-I", "FR-II", "FR-X", "C", "R", "PEC"
    ]
    assert tasks["blank-border"].kind == "yesno" and tasks["blank-border"].prompt.endswith("Yes or No.")
    assert all(tasks[n].kind == "boxes" and tasks[n].negative_answer for n in BOX_TASKS)
    assert all(t.title and t.prompt == t.prompt.strip() for t in tasks.values())


def test_get_task_and_unknown_name() -> None:
    assert get_task("b6-fr-class").benchmark == "B6"
    with pytest.raises(TaskError, match=r"unknown task 'nope'; run `radiollava tasks`.*known: describe"):
        get_task("nope")


def test_load_custom_folder(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: one\ntitle: One\nkind: text\nprompt: Hi?\n")
    (tmp_path / "b.yaml").write_text(
        "- {name: two, title: Two, kind: yesno, prompt: 'Yes?'}\n"
        "- {name: three, title: Three, kind: single, prompt: 'Which?', labels: [A, B]}\n"
    )
    tasks = load_tasks(tmp_path)
    assert list(tasks) == ["one", "two", "three"]
    assert tasks["two"].labels == ("Yes", "No")
    assert tasks["three"] == Task("three", "Three", "single", "Which?", labels=("A", "B"))


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [("kind: essay\nprompt: Why", "kind", "unknown kind 'essay'"),
     ("kind: text", "prompt", "missing"),
     ("kind: single\nprompt: Why", "labels", "needs labels"),
     ("kind: multi\nprompt: Why\nlabels: []", "labels", "needs labels"),
     ("kind: yesno\nprompt: Why\nlabels: [Yes, No]", "labels", "quote"),
     ("kind: text\nprompt: Why\ncolour: red", "colour", "unknown key")],
)
def test_bad_task_file(tmp_path: Path, text: str, key: str, words: str) -> None:
    (tmp_path / "bad.yaml").write_text(f"name: x\ntitle: X\n{text}\n")
    with pytest.raises(TaskError) as info:
        load_tasks(tmp_path)
    message = str(info.value)
    assert "bad.yaml" in message and f"key '{key}'" in message and words in message
    assert "\n" not in message


def test_duplicate_name_and_broken_yaml(tmp_path: Path) -> None:
    task = "- {name: same, title: S, kind: text, prompt: P}\n"
    (tmp_path / "a.yaml").write_text(task)
    (tmp_path / "b.yaml").write_text(task)
    with pytest.raises(TaskError, match=r"b\.yaml: key 'name': duplicate task name 'same'.*a\.yaml"):
        load_tasks(tmp_path)
    (tmp_path / "b.yaml").write_text("- [unclosed\n")
    with pytest.raises(TaskError, match=r"b\.yaml: cannot read YAML"):
        load_tasks(tmp_path)


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("text", "labels"),
    [("EXTENDED, DIFFUSE", ("EXTENDED", "DIFFUSE")), ("diffuse-large.", ("DIFFUSE-LARGE",)),
     ("Answer: Diffuse and extended!", ("EXTENDED", "DIFFUSE")),
     ('"EXTENDED"\nDIFFUSE-LARGE;', ("EXTENDED", "DIFFUSE-LARGE")),
     ("DIFFUSE LARGE", ("DIFFUSE-LARGE",)), ("NONE", ()), ("none.", ())],
)
def test_multi_labels(text: str, labels: tuple[str, ...]) -> None:
    answer = parse_labels(text, B1, multi=True, none_label="NONE")
    assert answer.parsed and answer.labels == labels and answer.kind == "multi"


@pytest.mark.parametrize(
    ("text", "words"),
    [("NONE, EXTENDED", "NONE mixed"), ("EXTENDED, COMPACT", "'COMPACT'"),
     ("I think it is extended", "'I think it is extended'"), ("", "empty")],
)
def test_multi_labels_unparsed(text: str, words: str) -> None:
    answer = parse_labels(text, B1, multi=True, none_label="NONE")
    assert answer.unparsed and not answer.labels and words in (answer.problem or "")


@pytest.mark.parametrize(
    ("text", "label"),
    [("FR-I", "FR-I"), ("fr-ii.", "FR-II"), ("FR I", "FR-I"), ("FRII", "FR-II"),
     ("FR_I", "FR-I"), ("FR1", "FR-I"), ("Answer: FR2", "FR-II")],
)
def test_single_label_spellings(text: str, label: str) -> None:
    answer = parse_labels(text, ("FR-I", "FR-II"))
    assert answer.parsed and answer.labels == (label,)


@pytest.mark.parametrize("text", ["FR-I, FR-II", "FR-III", "a radio galaxy", "NONE"])
def test_single_label_unparsed(text: str) -> None:
    answer = parse_labels(text, ("FR-I", "FR-II"))
    assert answer.unparsed and answer.problem


def test_b2_label_typo_and_variants() -> None:
    b2 = get_task("b2-source-morphology")
    assert parse_answer("1c-2p", b2).labels == ("1C-2P",)
    assert parse_answer("2C 3P", b2).labels == ("2C-3P",)
    assert parse_answer("1C-2C", b2).unparsed  # the paper's typo is not a label


@pytest.mark.parametrize(
    ("text", "label"),
    [("Yes", "Yes"), ("Yes.", "Yes"), ("no, there is none", "No"), ("NO", "No"),
     ("Answer: yes, an FR-II", "Yes"), ("**No**", "No")],
)
def test_yesno(text: str, label: str) -> None:
    assert parse_yesno(text).labels == (label,)


@pytest.mark.parametrize("text", ["Not sure", "None", "Maybe yes", "Yesterday", ""])
def test_yesno_unparsed(text: str) -> None:
    answer = parse_yesno(text)
    assert answer.unparsed and not answer.labels


# ---------------------------------------------------------------- boxes


def test_yolo_boxes_and_round_trip() -> None:
    text = "[0.45, 0.32, 0.05, 0.04], [0.7, 0.1, 0.12, 0.2]"
    answer = parse_boxes(text, label="COMPACT")
    assert answer.parsed and answer.problem is None and answer.convention == "yolo"
    first = answer.boxes[0]
    assert first.valid and first.label == "COMPACT" and first.raw == "[0.45, 0.32, 0.05, 0.04]"
    assert first.x0 == pytest.approx(0.425) and first.y1 == pytest.approx(0.34)
    assert format_yolo_boxes(answer.boxes) == text
    boxes = [PictureBox.from_yolo(0.123, 0.456, 0.0789, 0.1), PictureBox(0.5, 0.0, 1.0, 0.3)]
    again = parse_boxes(format_yolo_boxes(boxes)).boxes
    for box, back in zip(boxes, again, strict=True):
        assert back.to_yolo() == pytest.approx(box.to_yolo(), abs=0.005)


def test_format_yolo_boxes_repr() -> None:
    assert format_yolo_boxes([[0.5, 0.5, 1, 0.25]]) == "[0.5, 0.5, 1.0, 0.25]"
    assert format_yolo_boxes([]) == ""


def test_numbers_in_several_spellings() -> None:
    answer = parse_boxes("boxes: [5e-1, 2.5E-1, .1, 1E-1] and [-0.5, 0.5, 0.2, 0.2]")
    assert answer.boxes[0].to_yolo() == pytest.approx([0.5, 0.25, 0.1, 0.1])
    assert answer.boxes[0].valid and answer.boxes[1].problem == "out of range"


def test_flagged_boxes_are_kept() -> None:
    text = ("[0.5, 0.5, 0.1, 0.1], [nan, 0.5, 0.1, 0.1], [1.2, 0.5, 0.1, 0.1], "
            "[0.5, 0.5, 0, 0.1], [0.5, 0.5, -0.1, 0.1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5]")
    answer = parse_boxes(text)
    problems = [box.problem for box in answer.boxes]
    assert problems == [None, "NaN", "out of range", "zero size", "negative size",
                        "expected 4 numbers, got 3", "expected 4 numbers, got 5"]
    assert answer.parsed and answer.problem is not None and answer.problem.startswith("6 of 7 boxes")
    assert math.isnan(answer.boxes[1].x0) and answer.boxes[2].x1 == pytest.approx(1.25)


def test_tolerance_at_the_edges() -> None:
    assert parse_boxes("[0.5, 0.5, 1.0000001, 1.0]").boxes[0].valid
    assert not parse_boxes("[0.5, 0.5, 1.03, 1.0]").boxes[0].valid


def test_qwen_corners() -> None:
    text = ("<|object_ref_start|>radio galaxy<|object_ref_end|>"
            "<|box_start|>(100,200),(300,400)<|box_end|> and (500, 0), (1000, 250)")
    answer = parse_boxes(text, convention="qwen", label="RADIO-GALAXY")
    assert answer.convention == "qwen" and answer.problem is None
    first, second = answer.boxes
    assert (first.x0, first.y0, first.x1, first.y1) == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert first.label == "radio galaxy" and second.label == "RADIO-GALAXY"
    assert second.to_yolo() == pytest.approx([0.75, 0.125, 0.5, 0.25])
    assert parse_boxes("(300,400),(100,500)", convention="qwen").boxes[0].problem == "negative size"
    assert parse_boxes("[100, 200, 300, 400]", convention="qwen").boxes[0].x1 == pytest.approx(0.3)


def test_pixels_need_picture_size() -> None:
    answer = parse_boxes("[10, 20, 30, 60], [0, 0, 200, 100]", convention="pixels",
                         picture_size=(100, 200))
    assert (answer.boxes[0].x0, answer.boxes[0].y1) == pytest.approx((0.1, 0.3))
    assert answer.boxes[1].problem == "out of range"
    with pytest.raises(ValueError, match="picture_size"):
        parse_boxes("[10, 20, 30, 60]", convention="pixels")
    with pytest.raises(ValueError, match="convention"):
        parse_boxes("[1, 2, 3, 4]", convention="xyxy")


@pytest.mark.parametrize(
    "text",
    [NEGATIVE, "the image does NOT contain compact radio sources", "There are no compact sources.",
     "The image doesn't contain any radio source.", "No radio sources are visible.", "None."],
)
def test_negative_answers(text: str) -> None:
    answer = parse_boxes(text, negative_answer=NEGATIVE)
    assert answer.parsed and answer.boxes == () and answer.problem is None


@pytest.mark.parametrize("text", ["I see a bright blob in the centre.", "", "[COMPACT]", "(0.1, 0.2)"])
def test_boxes_unparsed(text: str) -> None:
    answer = parse_boxes(text)
    assert answer.unparsed and answer.problem == "no boxes found and no negative answer"


def test_parse_answer_dispatch() -> None:
    text = parse_answer("Anything.", None)
    assert text == parse_answer("Anything.", get_task("describe")) and text.kind == "text"
    assert parse_answer("NONE", get_task("b1-extended-diffuse")).labels == ()
    assert parse_answer("Yes.", get_task("b3-radio-galaxy")).labels == ("Yes",)
    assert parse_answer("COMPLEX", get_task("b5-peculiarity")).labels == ("COMPLEX",)
    boxes = parse_answer("[0.5, 0.5, 0.2, 0.2]", get_task("boxes-spurious"))
    assert boxes.boxes[0].label == "SPURIOUS"
    negative = parse_answer(NEGATIVE, get_task("boxes-compact"))
    assert negative.parsed and not negative.boxes
    pixels = parse_answer("[0, 0, 50, 50]", get_task("boxes-compact"), "pixels", (100, 100))
    assert pixels.convention == "pixels" and pixels.boxes[0].x1 == pytest.approx(0.5)


def test_an_answer_about_another_class_is_flagged_not_read_as_none():
    """"…does not contain spurious radio sources" to the compact question is no "none here"."""
    from glue_radiollava.core.parsing import parse_answer
    from glue_radiollava.core.tasks import get_task

    compact = get_task("boxes-compact")
    wrong = parse_answer(get_task("boxes-spurious").negative_answer, compact)
    assert wrong.unparsed and "another class" in wrong.problem and compact.negative_answer in wrong.problem
    right = parse_answer(compact.negative_answer, compact)
    assert right.parsed and not right.boxes
    # the multi-island negative is not mistaken for the single-island one, nor the reverse
    extended = get_task("boxes-extended")
    assert parse_answer(get_task("boxes-extended-multisland").negative_answer, extended).unparsed
    assert parse_answer(extended.negative_answer, extended).parsed
    assert parse_answer("No.", compact).parsed                           # a plain no stays a no


def test_benchmark_rules_are_task_data():
    """Budgets, how a yes/no truth derives from a label list, B7's box tasks and the paraphrases are
    read from resources/tasks, not written in code."""
    from benchmarks.data import derive_truth
    from benchmarks.tasks import box_tasks, get_bench
    from glue_radiollava.core.tasks import get_task, load_tasks

    assert get_task("b3-radio-galaxy").truth_from == "RADIO-GALAXY" and get_task("b4-ring-artefact").truth_from
    assert derive_truth(get_bench("B3"), ["RADIO-GALAXY", "COMPACT"]) == ("Yes",)
    assert derive_truth(get_bench("B4"), ["COMPACT"]) == ("No",)
    assert derive_truth(get_bench("B5"), ["EXTENDED"]) == ("COMPLEX",)
    assert get_bench("B7").max_new_tokens == 512 and get_bench("B3").max_new_tokens == 32
    assert set(box_tasks()) == {t.box_class for t in load_tasks().values() if t.kind == "boxes" and t.benchmark == "B7"}
    assert get_task("b3-radio-galaxy").paraphrases[0].startswith("Is there an extended radio galaxy")


def test_task_budget_and_paraphrases_are_validated(tmp_path):
    from glue_radiollava.core.tasks import TaskError, load_tasks

    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: t\n  kind: yesno\n  prompt: Is it?\n  max_new_tokens: 0\n")
    with pytest.raises(TaskError, match="max_new_tokens"):
        load_tasks(tmp_path)
    bad.write_text("- name: t\n  kind: yesno\n  prompt: Is it?\n  paraphrases: Is it really?\n")
    with pytest.raises(TaskError, match="paraphrases"):
        load_tasks(tmp_path)
