"""Box conventions per model family (issue 16): the registry, the parser, the Transform, the sky.

One parametrised suite over the conventions: parsing fixtures (well formed, malformed, out of
range: flagged, never dropped), ``format_boxes`` ⇄ ``parse_boxes``, and the sky round trip of a
known box on the LoTSS mosaic within 1.5″ for each. Then a tiny random Qwen2.5-VL built by
``radiollava model tiny --family qwen2_5_vl``: load, ask, stream, score, its JSON resized-pixel box
mapped through the processor's actual resize to the right sky position, and ``model info``.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from glue_radiollava.core.errors import RadioLlavaError
from glue_radiollava.core.models import FAMILIES, Family, detect_family, processor_input_size
from glue_radiollava.core.parsing import BOX_CONVENTIONS, CONVENTIONS, format_boxes, parse_boxes
from glue_radiollava.core.transform import Transform

GROUNDING = [c for c in CONVENTIONS if c not in ("none", "pixels")]


def qwen25_image_processor(**kw):
    """Qwen2.5-VL's image processor with its released defaults (patch 14, merge 2)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(**kw)


class _Proc:
    def __init__(self, image_processor):
        self.image_processor = image_processor


# ---------------------------------------------------------------- the registry
def test_every_family_names_a_known_convention_and_transformers_class():
    import importlib

    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as AUTO

    for family in FAMILIES.values():
        assert family.box_convention in BOX_CONVENTIONS, family.name
        assert AUTO[family.name] == family.model_class, family.name   # AutoModelForImageTextToText loads it
        module = importlib.import_module(f"transformers.models.{family.module}.processing_{family.module}")
        assert hasattr(module, family.processor), family.name
        assert family.grounds == (family.box_convention != "none")
    conventions = {f.name: f.box_convention for f in FAMILIES.values()}
    assert conventions == {
        "llava_onevision": "yolo", "llava_next": "yolo", "llava": "yolo", "qwen2_vl": "qwen",
        "qwen2_5_vl": "resized-pixels", "qwen3_vl": "xyxy-1000", "internvl": "xyxy-1000",
        "florence2": "florence-loc", "paligemma": "paligemma-loc", "idefics3": "none", "smolvlm": "none"}
    assert not FAMILIES["florence2"].chat and not FAMILIES["paligemma"].chat


def test_remote_code_families_are_refused_with_what_it_means(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tinyllava", "auto_map": {}}))
    with pytest.raises(RadioLlavaError, match=r"TinyLLaVA ships its own Python code \(remote code: loading it "
                                              r"runs that Python code on this machine\).*--trust-remote-code"):
        detect_family(tmp_path)
    trusted = detect_family(tmp_path, trust_remote_code=True)
    assert trusted.remote_code and trusted.title == "TinyLLaVA (remote code)" and trusted.box_convention == "yolo"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    assert detect_family(tmp_path).box_convention == "resized-pixels"


def test_trust_remote_code_is_off_by_default_and_reaches_the_loader(tmp_path, monkeypatch):
    """``--trust-remote-code`` (common model arguments) → ModelSpec → transformers' from_pretrained."""
    import transformers

    from glue_radiollava.cli import build_parser, main, model_spec
    from glue_radiollava.core.models import ModelSpec, load_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tinyllava",
                                                      "auto_map": {"AutoModelForCausalLM": "modeling_x.M"}}))
    parser = build_parser()
    args = parser.parse_args(["ask", "x.fits", "--box", "0", "0", "9", "9", "--model", str(tmp_path),
                              "--trust-remote-code"])
    assert model_spec(args).trust_remote_code is True
    assert model_spec(parser.parse_args(["ask", "x.fits", "--box", "0", "0", "9", "9"])).trust_remote_code is False
    assert ModelSpec().trust_remote_code is False and "trust_remote_code" in model_spec(args).describe()
    seen = []

    def fake(cls, folder, **kwargs):
        seen.append((cls.__name__, kwargs.get("trust_remote_code")))
        raise ValueError("Unrecognized configuration class") if cls is transformers.AutoModelForImageTextToText \
            else OSError("no modeling_x.py here")

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", classmethod(fake))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(fake))
    with pytest.raises(RadioLlavaError, match="--trust-remote-code only if you trust"):
        load_model(str(tmp_path))
    assert seen == []                                     # refused before any code could load
    with pytest.raises(RadioLlavaError, match="cannot load the model weights"):
        load_model(ModelSpec(str(tmp_path), device="cpu", trust_remote_code=True))
    assert seen == [("AutoModelForImageTextToText", True), ("AutoModelForCausalLM", True)]
    assert main(["model", "info", str(tmp_path)]) == 1    # info refuses too, and takes the flag
    assert build_parser().parse_args(["model", "info", "m", "--trust-remote-code"]).trust_remote_code


def test_task_phrasing_per_family_comes_from_the_catalogue():
    from glue_radiollava.core.tasks import get_task

    compact = get_task("boxes-compact")
    assert compact.prompt_for(FAMILIES["llava_onevision"].phrasing) == compact.prompt
    assert compact.prompt_for(FAMILIES["qwen2_vl"].phrasing) == compact.prompt        # unchanged
    assert compact.prompt_for(FAMILIES["qwen2_5_vl"].phrasing) == (
        "Outline the position of each compact radio source and output all the coordinates in JSON format.")
    assert compact.prompt_for("florence-2") == "<OPEN_VOCABULARY_DETECTION>compact radio source"
    assert compact.prompt_for("paligemma") == "detect compact radio source"
    assert "<ref>compact radio source</ref>" in compact.prompt_for("internvl")
    assert get_task("describe").prompt_for("florence-2") == "<MORE_DETAILED_CAPTION>"
    assert get_task("b3-radio-galaxy").prompt_for("paligemma") == get_task("b3-radio-galaxy").prompt


def test_phrasing_files_are_validated(tmp_path):
    from glue_radiollava.core.tasks import TaskError, load_tasks

    (tmp_path / "a.yaml").write_text("- {name: b, kind: boxes, prompt: Boxes, phrase: blob}\n"
                                     "- {name: c, kind: boxes, prompt: More, phrasings: {fam: Own words}}\n")
    (tmp_path / "b.yaml").write_text("phrasings:\n  fam:\n    boxes: find each {phrase}\n")
    tasks = load_tasks(tmp_path)
    assert tasks["b"].prompt_for("fam") == "find each blob" and tasks["c"].prompt_for("fam") == "Own words"
    (tmp_path / "a.yaml").write_text("- {name: b, kind: boxes, prompt: Boxes}\n")
    with pytest.raises(TaskError, match=r"task 'b', key 'phrase': needed by the 'fam' phrasing"):
        load_tasks(tmp_path)
    (tmp_path / "b.yaml").write_text("phrasings:\n  fam:\n    boxe: x\n")
    with pytest.raises(TaskError, match=r"phrasing 'fam', key 'boxe': unknown kind"):
        load_tasks(tmp_path)


# ---------------------------------------------------------------- parsing fixtures
# A 100×60 picture the processor resizes to 112×56 (so resized pixels are not picture pixels).
T = Transform.identity(100, 60).with_input_size(112, 56)
EDGES = (0.25, 0.5, 0.5, 0.75)        # x0, y0, x1, y1 (normalised) in every "good" fixture

FIXTURES = {
    "yolo": ("[0.375, 0.625, 0.25, 0.25]", "[0.5, 0.5, 0.2]", "[1.5, 0.5, 0.2, 0.2]"),
    "qwen": ("<|object_ref_start|>COMPACT<|object_ref_end|><|box_start|>(250,500),(500,750)<|box_end|>",
             "[250, 500, 500]", "(250,500),(1500,750)"),
    "resized-pixels": ('```json\n[\n  {"bbox_2d": [28, 28, 56, 42], "label": "COMPACT"}\n]\n```',
                       '[{"bbox_2d": [28, 28, 56', '[{"bbox_2d": [28, 28, 560, 42], "label": "COMPACT"}]'),
    "xyxy-1000": ("<ref>COMPACT</ref><box>[[250, 500, 500, 750]]</box>",
                  "<ref>COMPACT</ref><box>[[250, 500, 500]]</box>",
                  '[{"bbox_2d": [250, 500, 1500, 750], "label": "COMPACT"}]'),
    "florence-loc": ("COMPACT<loc_250><loc_500><loc_500><loc_750>",
                     "COMPACT<loc_250><loc_500><loc_500>", "COMPACT<loc_250><loc_500><loc_1500><loc_750>"),
    "paligemma-loc": ("<loc0512><loc0256><loc0768><loc0512> COMPACT",
                      "<loc0512><loc0256> COMPACT", "<loc0512><loc0256><loc1800><loc0512> COMPACT"),
}
NEGATIVES = {"yolo": "The image does not contain compact radio sources.", "qwen": "None.",
             "resized-pixels": "```json\n[]\n```", "xyxy-1000": "[]", "florence-loc": "</s><s></s>",
             "paligemma-loc": ""}


@pytest.mark.parametrize("convention", list(FIXTURES))
def test_good_box_in_each_convention(convention):
    answer = parse_boxes(FIXTURES[convention][0], convention, transform=T, label="TASK")
    assert answer.parsed and answer.problem is None and answer.convention == convention
    (box,) = answer.boxes
    tol = {"florence-loc": 0.0006}.get(convention, 1e-9)      # a Florence bin is its centre: +0.5/1000
    assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx(EDGES, abs=tol)
    assert box.convention == convention and len(box.values) == 4
    assert box.label == ("TASK" if convention == "yolo" else "COMPACT")


@pytest.mark.parametrize("convention", list(FIXTURES))
def test_malformed_box_is_kept_and_flagged(convention):
    answer = parse_boxes(FIXTURES[convention][1], convention, transform=T, label="TASK")
    assert answer.parsed and len(answer.boxes) == 1
    (box,) = answer.boxes
    assert not box.valid and box.problem and "1 of 1 boxes flagged" in answer.problem
    assert math.isnan(box.x0)


@pytest.mark.parametrize("convention", list(FIXTURES))
def test_out_of_range_box_is_kept_and_flagged(convention):
    answer = parse_boxes(FIXTURES[convention][2], convention, transform=T, label="TASK")
    (box,) = answer.boxes
    assert box.problem.startswith("out of range") and answer.problem.startswith("1 of 1 boxes flagged")


@pytest.mark.parametrize("convention", list(FIXTURES))
def test_negative_and_unreadable_answers(convention):
    negative = parse_boxes(NEGATIVES[convention], convention, transform=T,
                           negative_answer="The image does not contain compact radio sources.")
    assert negative.parsed and negative.boxes == ()
    unreadable = parse_boxes("a bright blob near the top", convention, transform=T)
    assert unreadable.unparsed and unreadable.problem == "no boxes found and no negative answer"


def test_several_boxes_and_labels_per_convention():
    florence = parse_boxes("</s><s>compact radio source<loc_10><loc_20><loc_30><loc_40><loc_50><loc_60>"
                           "<loc_70><loc_80>blob<loc_1><loc_2><loc_3><loc_4></s>", "florence-loc")
    assert [b.label for b in florence.boxes] == ["compact radio source"] * 2 + ["blob"]
    pali = parse_boxes("<loc0000><loc0000><loc0512><loc0512> compact source ; "
                       "<loc0512><loc0512><loc1023><loc1023> extended source", "paligemma-loc")
    assert [b.label for b in pali.boxes] == ["compact source", "extended source"]
    assert pali.boxes[0].x1 == 0.5 and pali.boxes[1].values == (512, 512, 1023, 1023)
    internvl = parse_boxes("<ref>A</ref><box>[[0, 0, 100, 100], [200, 200, 300, 300]]</box> and "
                           "<ref>B</ref><box>[[500, 500, 600, 600]]</box>", "xyxy-1000")
    assert [b.label for b in internvl.boxes] == ["A", "A", "B"] and internvl.problem is None
    qwen25 = parse_boxes('[{"label": "first", "bbox_2d": [0, 0, 56, 28]}, {"bbox_2d": [56, 28, 112, 56]}]',
                         "resized-pixels", transform=T, label="TASK")
    assert [b.label for b in qwen25.boxes] == ["first", "TASK"]
    assert [(b.x0, b.y1) for b in qwen25.boxes] == [(0.0, 0.5), (0.5, 1.0)]


def test_qwen25_boxes_need_the_processor_resize_and_no_grounding_never_parses():
    with pytest.raises(ValueError, match="resized-pixels.*needs a transform"):
        parse_boxes('[{"bbox_2d": [1, 2, 3, 4]}]', "resized-pixels")
    with pytest.raises(ValueError, match="needs a transform"):
        parse_boxes('[{"bbox_2d": [1, 2, 3, 4]}]', "resized-pixels", transform=Transform.identity(9, 9))
    none = parse_boxes("[0.5, 0.5, 0.1, 0.1]", "none")
    assert none.unparsed and "does not return boxes" in none.problem


@pytest.mark.parametrize("convention", GROUNDING)
def test_format_then_parse_gives_the_box_back(convention):
    boxes = [(0.1, 0.2, 0.35, 0.5), (0.6, 0.05, 0.9, 0.3)]
    text = format_boxes(boxes, convention, labels=["COMPACT", "EXTENDED"], transform=T)
    answer = parse_boxes(text, convention, transform=T)
    assert answer.problem is None and len(answer.boxes) == 2
    step = {"yolo": 0.01, "qwen": 1e-3, "xyxy-1000": 1e-3, "florence-loc": 1e-3, "paligemma-loc": 1 / 1024,
            "resized-pixels": 1 / 56}[convention]
    for box, want in zip(answer.boxes, boxes):
        assert np.allclose((box.x0, box.y0, box.x1, box.y1), want, atol=step)
    if convention != "yolo":
        assert [b.label for b in answer.boxes] == ["COMPACT", "EXTENDED"]


# ---------------------------------------------------------------- the processor's resize
@pytest.mark.parametrize("size", [(64, 64), (90, 50), (300, 200), (20, 20)])
def test_input_size_is_the_processors_actual_resize(size):
    """``processor_input_size`` equals the grid the processor really produces (× patch)."""
    ip = qwen25_image_processor(min_pixels=56 * 56, max_pixels=200 * 200)
    picture = np.zeros((size[1], size[0], 3), np.uint8)
    grid = ip(images=[picture], return_tensors="np")["image_grid_thw"][0]
    w, h = processor_input_size(_Proc(ip), FAMILIES["qwen2_5_vl"], *size)
    assert (h, w) == (int(grid[1]) * 14, int(grid[2]) * 14)
    assert w % 28 == 0 and h % 28 == 0


# ---------------------------------------------------------------- LoTSS sky round trip per convention
def _lotss_sources(data_dir, mosaic="P205+55"):
    with open(data_dir / "lotss_dr1/lotss_dr1_sources_near_cutouts.csv") as f:
        return [r for r in csv.DictReader(f) if r["Mosaic_ID"] == mosaic]


@pytest.fixture(scope="module")
def lotss(data_dir):
    from glue_radiollava.core.image import RadioImage

    return RadioImage.open(data_dir / "lotss_dr1/P205+55-mosaic.fits"), _lotss_sources(data_dir)


@pytest.mark.parametrize("profile", ["radio-llava", "radio-llava@224"])
@pytest.mark.parametrize("convention", GROUNDING)
def test_known_box_lands_on_its_lotss_source_in_every_convention(lotss, convention, profile):
    """A box around a catalogued source, written as the family writes it, maps back within 1.5″."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from glue_radiollava.core.image import parse_size
    from glue_radiollava.core.profiles import get_profile, render
    from glue_radiollava.core.skyregions import map_boxes

    image, sources = lotss
    name, _, size = profile.partition("@")
    prof = get_profile(name).with_options(size=int(size) if size else None)
    processor = _Proc(qwen25_image_processor())           # the released Qwen2.5-VL pixel budget
    checked = 0
    for src in sources:
        coord = SkyCoord(float(src["RA"]), float(src["DEC"]), unit="deg")
        X, Y = image.wcs.world_to_pixel(coord)
        if not (40 < X < 360 and 40 < Y < 360) or checked == 6:
            continue
        view = render(image.cutout_sky(image.wcs.pixel_to_world(X + 7, Y - 5), parse_size("90arcsec")), prof)
        t = view.transform.with_input_size(*processor_input_size(processor, FAMILIES["qwen2_5_vl"],
                                                                 *view.picture.size))
        edges = t.mosaic_box_to_normalised(X - 4, Y - 4, X + 4, Y + 4)
        text = format_boxes([edges], convention, labels=["COMPACT"], transform=t)
        parsed = parse_boxes(text, convention, transform=t)
        (box,), warnings = map_boxes(parsed.boxes, t)
        assert not warnings and parsed.problem is None
        centre = SkyCoord(box.ra * u.deg, box.dec * u.deg, frame=box.frame)
        assert centre.separation(coord).arcsec < 1.5, (src["Source_Name"], text)
        if convention == "resized-pixels" and size == "":
            assert t.input_size != view.picture.size        # 60 px → 56 px: the resize matters
            (bad,), _ = map_boxes(parse_boxes(text, "xyxy-1000").boxes, t)   # the old 0..1000 reading
            far = SkyCoord(bad.ra * u.deg, bad.dec * u.deg, frame=bad.frame).separation(coord).arcsec
            assert far > 20
        checked += 1
    assert checked == 6


# ---------------------------------------------------------------- a tiny Qwen2.5-VL, end to end
@pytest.fixture(scope="module")
def qwen25_dir(tmp_path_factory):
    from glue_radiollava.cli import main

    folder = tmp_path_factory.mktemp("qwen25") / "model"
    assert main(["model", "tiny", str(folder), "--family", "qwen2_5_vl"]) == 0
    return folder


@pytest.fixture(scope="module")
def qwen25(qwen25_dir):
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import load_model

    return Assistant(load_model(str(qwen25_dir)))


@pytest.fixture()
def view64(qwen25, synthetic_fits):
    from glue_radiollava.core.image import RadioImage

    return qwen25.view(RadioImage.open(synthetic_fits()).cutout_pixels(88, 48, 152, 112))   # 64×64


def test_tiny_qwen25_loads_as_its_family(qwen25_dir, qwen25):
    config = json.loads((qwen25_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    loaded = qwen25.loaded
    assert loaded.family.name == "qwen2_5_vl" and loaded.box_convention == "resized-pixels"
    assert type(loaded.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(loaded.processor).__name__ == "Qwen2_5_VLProcessor"
    tok = loaded.tokenizer
    assert "<|box_start|>" in tok.get_vocab() and tok.convert_tokens_to_ids("<|image_pad|>") == config["image_token_id"]


def test_tiny_qwen25_ask_stream_score(qwen25, view64):
    inputs = qwen25._inputs(view64, "Describe the image.")
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]               # 64 px → smart_resize → 56 px
    assert qwen25.loaded.input_size(view64.picture) == (56, 56)
    chunks = []
    answer = qwen25.ask(view64, task="boxes-compact", max_new_tokens=4, on_text=chunks.append)
    assert answer.question.startswith("Outline the position of each compact radio source")
    assert answer.timings["new_tokens"] >= 1 and "".join(chunks).strip() == answer.text
    streamed = qwen25.stream(view64, question="Describe the image.", max_new_tokens=3)
    assert "".join(streamed).strip() == qwen25.ask(view64, question="Describe the image.", max_new_tokens=3).text
    scores = qwen25.score(view64, task="b3-radio-galaxy")
    assert scores.labels == ["Yes", "No"] and abs(sum(scores.probs) - 1) < 1e-6
    (batched,) = qwen25.score_batch([view64], task="b3-radio-galaxy")
    assert batched.probs == pytest.approx(scores.probs, abs=1e-4)


def test_tiny_qwen25_json_box_maps_through_the_processor_resize(qwen25, view64):
    """A box in pixels of the 56×56 resized picture lands where that box is on the sky."""
    task = qwen25.question_for(None, "boxes-compact")[1]
    # resized px 21..35 = picture px 24..40 (×64/56) = cutout px 24..40 = mosaic 112..128 (edges)
    text = '```json\n[\n  {"bbox_2d": [21, 21, 35, 35], "label": "compact radio source"}\n]\n```'
    answer = qwen25.answer_for(view64, "q", task, text, False, {})
    assert answer.parsed.parsed and answer.parsed.convention == "resized-pixels" and not answer.warnings
    (box,) = answer.boxes
    assert box.pixel_box == pytest.approx((111.5, 71.5, 127.5, 87.5), abs=1e-9)
    assert box.label == "COMPACT"                 # the task's phrase reads as its class
    centre = view64.transform.wcs.pixel_to_world(119.5, 79.5)
    assert (box.ra, box.dec) == pytest.approx((centre.ra.deg, centre.dec.deg), abs=1e-9)
    # the old reading (0..1000) would put it in the picture's top-left corner
    assert parse_boxes(text, "xyxy-1000").boxes[0].x1 < 0.04


def test_model_info_prints_family_convention_and_resize(qwen25_dir, capsys):
    from glue_radiollava.cli import main

    assert main(["model", "info", str(qwen25_dir)]) == 0
    out = capsys.readouterr().out
    assert "qwen2_5_vl: Qwen2.5-VL, Qwen2_5_VLForConditionalGeneration" in out
    assert "resized-pixels:" in out and "sides multiples of 28" in out and "64x64 -> 56x56" in out
    assert "profile     radio-llava v1" in out
    assert main(["model", "info", str(qwen25_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "qwen2_5_vl" and info["parameters"] > 0 and info["weights_dtype"] == {
        "F32": info["parameters"]}
    assert main(["model", "info", str(qwen25_dir / "nowhere")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_grounding_tokens_survive_decoding_and_non_grounding_families_refuse_boxes(qwen25):
    from dataclasses import replace

    from glue_radiollava.core.models import decode_answer

    tok = qwen25.loaded.tokenizer
    text = "<|object_ref_start|>COMPACT<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>"
    ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    assert decode_answer(tok, ids, FAMILIES["qwen2_vl"]) == text
    assert decode_answer(tok, ids, FAMILIES["llava"]) == tok.decode(ids, skip_special_tokens=True)
    smol = FAMILIES["smolvlm"]
    assert isinstance(smol, Family) and not smol.grounds

    class _Loaded:
        family = smol

    assistant = object.__new__(type(qwen25))
    assistant.loaded = _Loaded()
    with pytest.raises(RadioLlavaError, match="SmolVLM does not return boxes"):
        assistant.question_for(None, "boxes-compact")
    assert assistant.question_for(None, "b3-radio-galaxy")[1].name == "b3-radio-galaxy"
    florence = replace(FAMILIES["florence2"])
    assistant.loaded.family = florence
    with pytest.raises(RadioLlavaError, match="not a chat model"):
        assistant.prompt("<OD>", history=[("q", "a")])
    assert assistant.prompt("<OD>") == ("<OD>", [])


# ---------------------------------------------------------------- every other tiny family, end to end
# family → (its special tokens that must be in the vocabulary, image tokens for a 64×64 picture)
TINY = {
    "qwen3_vl": (["<|image_pad|>", "<|vision_start|>", "<|box_start|>", "<|object_ref_start|>"], 4),
    "internvl": (["<img>", "</img>", "<IMG_CONTEXT>", "<ref>", "</ref>", "<box>", "</box>"], 4),
    "florence2": (["<image>", "<s>", "</s>", "<loc_0>", "<loc_999>"], 5),
    "paligemma": (["<image>", "<bos>", "<eos>", "<loc0000>", "<loc1023>", "<seg127>"], 16),
    "idefics3": (["<image>", "<fake_token_around_image>", "<global-img>", "<row_2_col_2>", "<end_of_utterance>"], 20),
    "smolvlm": (["<image>", "<fake_token_around_image>", "<global-img>", "<row_2_col_2>", "<end_of_utterance>"], 20),
}


@pytest.fixture(scope="module", params=list(TINY))
def tiny(request, tmp_path_factory):
    """A tiny random model of each family, built by ``radiollava model tiny`` and loaded by the core loader."""
    from glue_radiollava.cli import main
    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import load_model

    if request.param == "smolvlm":
        pytest.importorskip("num2words", reason="SmolVLM's processor needs num2words")
    folder = tmp_path_factory.mktemp(request.param) / "model"
    assert main(["model", "tiny", str(folder), "--family", request.param]) == 0
    return request.param, Assistant(load_model(str(folder)))


@pytest.fixture()
def tiny_view(tiny, synthetic_fits):
    from glue_radiollava.core.image import RadioImage

    return tiny[1].view(RadioImage.open(synthetic_fits()).cutout_pixels(88, 48, 152, 112))   # 64×64


def test_tiny_family_loads_with_its_classes_tokens_and_image_tokens(tiny, tiny_view):
    name, assistant = tiny
    loaded, family = assistant.loaded, FAMILIES[name]
    assert loaded.family is family
    assert type(loaded.model).__name__ == family.model_class
    assert type(loaded.processor).__name__ == family.processor
    tokens, n_image = TINY[name]
    vocab = loaded.tokenizer.get_vocab()
    assert all(t in vocab for t in tokens), [t for t in tokens if t not in vocab]
    inputs = assistant._inputs(tiny_view, "Describe the image.")
    image_id = loaded.model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == n_image
    assert "labels" not in inputs
    if family.chat:
        assert loaded.processor.chat_template


def test_tiny_family_ask_stream_score(tiny, tiny_view):
    name, assistant = tiny
    family = assistant.loaded.family
    task = "boxes-compact" if family.grounds else "describe"
    chunks = []
    answer = assistant.ask(tiny_view, task=task, max_new_tokens=4, on_text=chunks.append)
    assert answer.question == assistant.question_for(None, task)[0]
    assert 1 <= answer.timings["new_tokens"] <= 4 and "".join(chunks).strip() == answer.text
    streamed = assistant.stream(tiny_view, question="Describe the image.", max_new_tokens=3)
    assert "".join(streamed).strip() == assistant.ask(tiny_view, question="Describe the image.", max_new_tokens=3).text
    scores = assistant.score(tiny_view, task="b3-radio-galaxy")
    assert scores.labels == ["Yes", "No"] and abs(sum(scores.probs) - 1) < 1e-6
    assert all(lp < 0 for lp in scores.logprobs)
    (batched,) = assistant.score_batch([tiny_view], task="b3-radio-galaxy")
    assert batched.probs == pytest.approx(scores.probs, abs=1e-4)
    (asked,) = assistant.ask_batch([tiny_view], question="Describe the image.", max_new_tokens=3)
    assert asked.text == assistant.ask(tiny_view, question="Describe the image.", max_new_tokens=3).text


PIXEL_BOX = (103.5, 79.5, 119.5, 95.5)     # edges of mosaic px 104..119 × 80..95


def test_tiny_family_box_maps_to_mosaic_pixels_and_sky(tiny, tiny_view):
    """A box written as the family writes it lands on the mosaic pixels it names, and on the sky there."""
    name, assistant = tiny
    family = assistant.loaded.family
    if not family.grounds:
        with pytest.raises(RadioLlavaError, match="does not return boxes"):
            assistant.ask(tiny_view, task="boxes-compact")
        return
    task = assistant.question_for(None, "boxes-compact")[1]
    transform = assistant.transform_for(tiny_view)
    # picture px x 16..32, y 32..48 of the 64×64 cutout at (88, 48) (picture rows run as mosaic rows)
    edges = (0.25, 0.5, 0.5, 0.75)
    text = format_boxes([edges], family.box_convention, labels=["compact radio source"], transform=transform)
    answer = assistant.answer_for(tiny_view, "q", task, text, False, {})
    assert answer.parsed.parsed and answer.parsed.convention == family.box_convention and not answer.warnings
    (box,) = answer.boxes
    assert box.pixel_box == pytest.approx(PIXEL_BOX, abs=0.1)       # a location bin is ≤ 0.07 px here
    assert box.label == "COMPACT"
    x, y = (box.pixel_box[0] + box.pixel_box[2]) / 2, (box.pixel_box[1] + box.pixel_box[3]) / 2
    centre = tiny_view.transform.wcs.pixel_to_world(x, y)
    assert (box.ra, box.dec) == pytest.approx((centre.ra.deg, centre.dec.deg), abs=1e-9)


@pytest.fixture(scope="module")
def bright_dark(tmp_path_factory):
    """Two 64×64 pictures with a two-turn conversation each (a LLaVA JSON)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("family-data")
    records = []
    for i, level in enumerate((220, 20)):
        Image.fromarray(np.full((64, 64, 3), level, np.uint8)).save(folder / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nIs the image bright?"}, {"from": "gpt", "value": "Yes" if i == 0 else "No"},
            {"from": "human", "value": "Describe it."}, {"from": "gpt", "value": "A field."}]})
    (folder / "train.json").write_text(json.dumps(records))
    return folder / "train.json"


def test_tiny_family_lora_step_trains_and_reloads(tiny, bright_dark, tmp_path, synthetic_fits):
    """One LoRA step on every family: answers learned (labels only there), the adapter reloads and scores."""
    import torch

    from glue_radiollava.core.assistant import Assistant
    from glue_radiollava.core.models import load_model
    from training.finetune import Collator, ConversationDataset, load_config, read_examples, train

    name, assistant = tiny
    loaded = assistant.loaded
    family = loaded.family
    prefix = None
    if loaded.model.config.is_encoder_decoder:
        from glue_radiollava.core.models import decoder_prefix

        prefix = decoder_prefix(loaded.model)
    collator = Collator(loaded.processor, "sys", 4096, family, prefix)
    batch = collator([ConversationDataset(read_examples(bright_dark, loaded.profile), loaded.profile)[0]])
    labels = batch["labels"]
    tok = loaded.tokenizer
    learned = [tok.decode([int(t) for t in row if t != -100], skip_special_tokens=True) for row in labels]
    if family.chat:      # one row: both answers, nothing else
        assert len(learned) == 1 and "".join(learned[0].split()) == "YesAfield."
    else:                # one row per turn
        assert [s.strip() for s in learned] == ["Yes", "A field."]
    with torch.no_grad():
        assert float(loaded.model(**batch).loss) > 0
    out = train(load_config(None, dict(base=str(loaded.folder), data=str(bright_dark), out=str(tmp_path / "run"),
                                       method="lora", max_steps=1, learning_rate=1e-3, logging_steps=1,
                                       save_steps=10, per_device_batch_size=2, gradient_accumulation_steps=1,
                                       gradient_checkpointing=False, warmup_ratio=0.0, lr_scheduler="constant",
                                       lora_r=4, lora_alpha=8)))
    card = json.loads((out / "training_card.json").read_text())
    assert card["steps"] == 1 and 0 < card["trainable"] < card["parameters"]
    tuned = Assistant(load_model(str(out)))
    assert tuned.loaded.family is family and tuned.loaded.spec.adapter
    from glue_radiollava.core.image import RadioImage

    view = tuned.view(RadioImage.open(synthetic_fits()).cutout_pixels(88, 48, 152, 112))
    scores = tuned.score(view, answers=["Yes", "No"], question="Is the image bright?")
    assert abs(sum(scores.probs) - 1) < 1e-6


def test_tiny_family_scans_a_small_mosaic(tiny, synthetic_fits, tmp_path):
    """The scan (batched box tasks over tiles, merged on the sky, journalled) with each family; a family
    without grounding is refused before any tile is asked."""
    from glue_radiollava.core.errors import RadioLlavaError
    from glue_radiollava.core.image import RadioImage
    from glue_radiollava.core.scan import AssistantDetector, plan_tiles, scan

    name, assistant = tiny
    image = RadioImage.open(synthetic_fits())
    tiles = plan_tiles(image.shape, 64, 0.25)
    detector = AssistantDetector(assistant, ["boxes-compact"], max_new_tokens=8)
    journal = tmp_path / "scan.jsonl"
    if not assistant.loaded.family.grounds:
        with pytest.raises(RadioLlavaError, match="does not return boxes"):
            scan(image, detector, tiles, journal, batch_size=4)
        return
    result = scan(image, detector, tiles, journal, batch_size=4)
    assert result.complete and result.tiles_done == len(tiles) == result.tiles_total
    assert len(journal.read_text().splitlines()) == len(tiles) + 1          # header + one line per tile
    for box in result.boxes:                                                 # on the image, on the sky
        X0, Y0, X1, Y1 = box.pixel_box
        assert -1 <= X0 < X1 <= 201 and -1 <= Y0 < Y1 <= 201 and box.width_arcsec > 0
