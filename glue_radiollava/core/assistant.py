"""The Assistant: ask a loaded model about a picture (multi-turn, few-shot), stream, and score.

``ask``   generates an answer (greedy by default), streaming text to a callback, cancellable;
``stream`` yields the text as it comes (a generator over ``ask``);
``score`` gives the probability of each allowed answer from the model's likelihood, in one
          batched forward pass: always a valid answer, with probabilities.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator, Sequence

from .chat import chat_messages
from .errors import RadioLlavaError
from .batching import Scores, ask_batch, score_batch
from .models import LoadedModel, ModelSpec, load_model
from .parsing import ParsedAnswer, parse_answer
from .profiles import ModelView, render
from .skyregions import SkyBox, map_boxes, mosaic_boxes
from .tasks import Task, get_task

SYSTEM_PROMPT = "You are an AI assistant specialized in radio astronomical topics."


@dataclass
class Example:
    """A few-shot example: a picture with its question and the answer the model should give."""

    view: ModelView
    question: str
    answer: str


@dataclass
class Turn:
    question: str
    answer: str


@dataclass
class Answer:
    question: str
    task: str | None
    text: str
    parsed: ParsedAnswer
    boxes: list[SkyBox]
    timings: dict
    provenance: dict
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False
    confidence: float | None = None     # geometric-mean probability of the generated tokens
    pixel_boxes: list = field(default_factory=list)   # (label, mosaic pixel box) of every valid box,
                                                      # also for pictures without a celestial WCS

    @property
    def labels(self) -> list[str]:
        return list(self.parsed.labels)

    def to_dict(self) -> dict:
        return {"question": self.question, "task": self.task, "answer": self.text,
                "labels": self.labels, "parsed": self.parsed.parsed, "parse_problem": self.parsed.problem,
                "boxes": [b.to_dict() for b in self.boxes], "cancelled": self.cancelled,
                "confidence": self.confidence,
                **self.provenance, "timings": self.timings, "warnings": self.warnings}


def _text_streamer(on_text: Callable[[str], None] | None, decode: Callable[[list[int]], str]):
    """A transformers streamer that decodes new tokens incrementally (``decode(ids)`` → text) and
    calls ``on_text``."""
    from transformers.generation.streamers import BaseStreamer

    class _Streamer(BaseStreamer):
        def __init__(self):
            self.ids: list[int] = []
            self.sent = ""
            self.skip_prompt = True

        def put(self, value):
            if self.skip_prompt:  # the first call carries the prompt
                self.skip_prompt = False
                return
            self.ids.extend(int(v) for v in value.reshape(-1).tolist())
            self._send(final=False)

        def end(self):
            self._send(final=True)

        def _send(self, final: bool):
            text = decode(self.ids)
            if not final and text.endswith("\ufffd"):
                return  # wait for the rest of a multi-byte character
            if on_text and len(text) > len(self.sent):
                on_text(text[len(self.sent):])
            self.sent = text

    return _Streamer()


class Assistant:
    """Ask a LoadedModel about ModelViews. Not thread-safe: one generation at a time."""

    def __init__(self, model: LoadedModel | ModelSpec | str = "nano", system_prompt: str | None = SYSTEM_PROMPT):
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model)
        self.system_prompt = system_prompt

    @property
    def profile(self):
        return self.loaded.profile

    def view(self, cutout) -> ModelView:
        """Render a Cutout with the model's own preprocessing profile."""
        return render(cutout, self.loaded.profile)

    # ------------------------------------------------------------ prompts
    def _messages(self, question: str, history: Sequence[Turn], examples: Sequence[Example]):
        messages = chat_messages(self.system_prompt, [(t.question, t.answer) for t in history], question,
                                 [(ex.question, ex.answer) for ex in examples])
        return messages, [ex.view.picture for ex in examples]

    def prompt(self, question: str, history=(), examples=()) -> tuple[str, list]:
        """The prompt text and the example pictures: through the chat template, or the raw task
        prompt for families that are not chat models (Florence-2, PaliGemma)."""
        family = getattr(self.loaded, "family", None)
        if family is not None and not family.chat:
            if history or examples:
                raise RadioLlavaError(f"{family.title} is not a chat model: it takes one task prompt per "
                                      "picture, without conversation history or few-shot examples")
            prefix = getattr(self.loaded.processor, "image_token", "") if family.image_in_prompt else ""
            return prefix + question, []
        messages, images = self._messages(question, history, examples)
        processor = self.loaded.processor
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), images

    def _inputs(self, view: ModelView, question: str, history=(), examples=()):
        prompt, images = self.prompt(question, history, examples)
        inputs = self.loaded.processor(images=images + [view.picture], text=[prompt], return_tensors="pt")
        limit = self.context_length()
        n = int(inputs["input_ids"].shape[-1])
        if limit and n >= limit:
            raise RadioLlavaError(f"the prompt is {n} tokens (question, conversation and picture); the model holds "
                                  f"at most {limit}: shorten the question or start a new conversation")
        return self.loaded.on_device(dict(inputs))

    @property
    def encoder_decoder(self) -> bool:
        """True for encoder–decoder models (Florence-2): the prompt is the encoder's, the answer the decoder's."""
        config = getattr(getattr(self.loaded, "model", None), "config", None)
        return bool(getattr(config, "is_encoder_decoder", False))

    def context_length(self) -> int | None:
        """How many positions the model's language model holds (None when its config does not say)."""
        config = self.loaded.model.config
        text = getattr(config, "text_config", None) or config
        return getattr(text, "max_position_embeddings", None)

    def question_for(self, question: str | None, task: Task | str | None) -> tuple[str, Task | None]:
        """The question to ask: the free question, or the task's prompt in the family's phrasing."""
        task = get_task(task) if isinstance(task, str) else task
        family = getattr(getattr(self, "loaded", None), "family", None)
        if task is not None and task.kind == "boxes" and family is not None and not family.grounds:
            raise RadioLlavaError(f"{family.title} does not return boxes (no grounding): task {task.name!r} "
                                  "needs a grounding model; ask it questions or score closed-set labels")
        if question and question.strip():
            return question.strip(), task
        if task is None:
            raise RadioLlavaError("no question: give a question or a task (`radiollava tasks` lists them)")
        return task.prompt_for(family.phrasing if family is not None else None), task

    # ------------------------------------------------------------ ask / stream
    def ask(self, view: ModelView, question: str | None = None, task: Task | str | None = None,
            history: Sequence[Turn] = (), examples: Sequence[Example] = (),
            max_new_tokens: int = 256, temperature: float = 0.0,
            on_text: Callable[[str], None] | None = None,
            cancel: threading.Event | None = None) -> Answer:
        """Generate an answer. ``temperature`` 0 is greedy; ``cancel.set()`` stops it between tokens."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        question, task = self.question_for(question, task)
        t0 = time.perf_counter()
        inputs = self._inputs(view, question, history, examples)
        prompt_len = inputs["input_ids"].shape[1]

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return bool(cancel is not None and cancel.is_set())

        tok = self.loaded.tokenizer
        gen = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0,
               "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
               "stopping_criteria": StoppingCriteriaList([_Cancel()]),
               "streamer": _text_streamer(on_text, self.decode)}
        if temperature > 0:
            gen["temperature"] = float(temperature)
        else:
            gen.update(temperature=None, top_p=None, top_k=None)
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = self.loaded.model.generate(**inputs, **gen)
        t2 = time.perf_counter()
        new = out[0, 1:] if self.encoder_decoder else out[0, prompt_len:]   # after the decoder's start token
        text = self.decode(new.tolist()).strip()
        cancelled = bool(cancel is not None and cancel.is_set())
        return self.answer_for(view, question, task, text, cancelled,
                            {"render_s": None, "prepare_s": round(t1 - t0, 4),
                             "generate_s": round(t2 - t1, 4), "new_tokens": int(new.numel())})

    def stream(self, view: ModelView, question: str | None = None, task: Task | str | None = None,
               cancel: threading.Event | None = None, **kwargs) -> Iterator[str]:
        """Yield the answer's text as it is generated; the final Answer is the generator's return value."""
        import queue

        chunks: queue.Queue = queue.Queue()
        result: dict = {}
        done = object()

        def work():
            try:
                result["answer"] = self.ask(view, question, task, on_text=chunks.put, cancel=cancel, **kwargs)
            except BaseException as exc:  # handed to the consumer
                result["error"] = exc
            finally:
                chunks.put(done)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while (item := chunks.get()) is not done:
            yield item
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["answer"]

    def decode(self, ids) -> str:
        """Generated ids → text: special tokens dropped, the family's grounding markup kept."""
        return self.loaded.decode(ids)

    def transform_for(self, view: ModelView):
        """The view's Transform; for boxes in resized pixels (Qwen2.5-VL) told the processor's resize."""
        return self.loaded.view_transform(view)

    def answer_for(self, view, question, task, text, cancelled, timings) -> Answer:
        """The Answer to ``text``: parsed for ``task``, its boxes mapped to the sky, with provenance."""
        transform = self.transform_for(view)
        parsed = parse_answer(text, task, self.loaded.box_convention, picture_size=view.picture.size,
                              transform=transform)
        warnings = list(view.warnings)
        boxes: list[SkyBox] = []
        pixel_boxes = []
        if parsed.boxes:
            box_label = task.box_class if task is not None else None
            fixed = [_class_label(b, task) for b in parsed.boxes]
            fixed = [b if b.label or not box_label else _with_label(b, box_label) for b in fixed]
            if view.transform.wcs is not None:
                boxes, box_warnings = map_boxes(fixed, transform)
                warnings += box_warnings
                pixel_boxes = [(b.label, b.pixel_box) for b in boxes]
            else:                                   # a plain picture: mosaic pixels only, no sky
                pixel_boxes = mosaic_boxes(fixed, transform)
        if parsed.unparsed:
            warnings.append(f"could not parse the answer: {parsed.problem}")
        return Answer(question, task.name if task else None, text, parsed, boxes, timings,
                      self.provenance(view, question), warnings, cancelled, pixel_boxes=pixel_boxes)

    def provenance(self, view: ModelView, question: str) -> dict:
        region = None
        cut = view.cutout
        if cut is not None and view.transform.wcs is not None:
            c = cut.center_sky
            w, h = cut.size_arcsec
            region = {"ra": float(c.spherical.lon.deg), "dec": float(c.spherical.lat.deg),
                      "frame": c.frame.name, "width_arcsec": w, "height_arcsec": h,
                      "pixel_box": [cut.x0, cut.y0, cut.x0 + cut.shape[1], cut.y0 + cut.shape[0]],
                      "image": cut.image.path, "hdu": cut.image.hdu}
        return {"model": self.loaded.provenance(),
                "preprocessing": {"profile": view.profile.name, "version": view.profile.version,
                                  "parameters": view.profile.to_dict()},
                "region": region, "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    # ------------------------------------------------------------ batches
    def ask_batch(self, views: Sequence[ModelView], question: str | None = None, task: Task | str | None = None,
                  examples: Sequence[Example] = (), max_new_tokens: int = 64) -> list[Answer]:
        """``ask`` (greedy) for many pictures in one ``generate`` call; see ``core/batching.py``."""
        return ask_batch(self, views, question, task, examples, max_new_tokens)

    def score_batch(self, views: Sequence[ModelView], answers: Sequence[str] | None = None,
                    question: str | None = None, task: Task | str | None = None,
                    examples: Sequence[Example] = ()) -> list[Scores]:
        """``score`` for many pictures, the prompt run once per picture; see ``core/batching.py``."""
        return score_batch(self, views, answers, question, task, examples)

    # ------------------------------------------------------------ score
    def score(self, view: ModelView, answers: Sequence[str] | None = None, question: str | None = None,
              task: Task | str | None = None, examples: Sequence[Example] = ()) -> Scores:
        """Probability of each allowed answer (default: the task's labels) from the model's likelihood:
        ``score_batch`` of one picture (closed-set questions are asked on the region alone)."""
        return score_batch(self, [view], answers, question, task, examples)[0]


def _class_label(box, task):
    """A box labelled with the task's ``phrase`` (families asked in their own words) → its box_class."""
    if task is None or not task.box_class or not task.phrase or not box.label:
        return box
    def norm(s):
        return " ".join(s.lower().replace("-", " ").split()).rstrip("s")
    return _with_label(box, task.box_class) if norm(box.label) == norm(task.phrase) else box


def _with_label(box, label):
    from dataclasses import replace

    return replace(box, label=label)
