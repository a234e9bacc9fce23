"""``RadioLlava``: the lmms-eval model type ``radiollava``, backed by the core's loader and Assistant.

    lmms-eval --model radiollava --model_args model=DIR,adapter=ADAPTER --tasks mme,scienceqa_img

``model_args``: ``model`` (nano, a model folder, an adapter folder, a hub id), ``adapter``,
``quantize`` (4bit/8bit), ``dtype``, ``device``, ``trust_remote_code``, ``batch_size``,
``system_prompt`` (default: the Assistant's), ``max_new_tokens`` (default for tasks that set none).

- Radio documents (``radio_b1`` … ``radio_b7``) are asked as ``radiollava bench run`` asks them: the
  FITS cutout rendered with the model's own preprocessing profile, the catalogue task's prompt in
  the family's phrasing, ``ask_batch`` in batches of ``batch_size`` (B7: every class, boxes
  recorded in mosaic pixels as the runner records them).
- Any other task: its prompt and its first picture through the Assistant (chat template, system
  prompt), greedy unless the task sets a temperature, cut at the task's ``until`` strings.
  Text-only documents go through the same chat template without a picture. ``loglikelihood`` is
  the summed log-probability of the continuation's tokens after the prompt.
"""

from __future__ import annotations

import json
from typing import List, Tuple

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from . import radio

DEFAULT_MAX_NEW_TOKENS = 256


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class RadioLlava(lmms):
    is_simple = True

    def __init__(self, model: str = "nano", adapter: str | None = None, quantize: str | None = None,
                 dtype: str | None = None, device: str | None = None, trust_remote_code=False,
                 batch_size=1, system_prompt: str | None = None, max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
                 assistant=None, **kwargs) -> None:
        super().__init__()
        from glue_radiollava.core.assistant import SYSTEM_PROMPT, Assistant
        from glue_radiollava.core.models import ModelSpec

        if assistant is None:
            spec = ModelSpec(str(model), adapter or None, quantize or None, dtype or None, device or None,
                             _truthy(trust_remote_code))
            assistant = Assistant(spec, system_prompt if system_prompt is not None else SYSTEM_PROMPT)
        self.assistant = assistant
        self.batch_size_per_gpu = max(1, int(batch_size or 1)) if str(batch_size).isdigit() else 1
        self.max_new_tokens = int(max_new_tokens)
        self._single_picture_warned = False

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def _doc(self, task, split, doc_id):
        return self.task_dict[task][split][doc_id]

    # ------------------------------------------------------------ generation
    def generate_until(self, requests: List[Instance]) -> List[str]:
        from tqdm import tqdm

        out: list[str | None] = [None] * len(requests)
        radio_groups: dict = {}
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="radiollava")
        for i, req in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            doc = self._doc(task, split, doc_id)
            if radio.is_radio_doc(doc):
                radio_groups.setdefault((task, doc["bench"]), []).append((i, doc, gen_kwargs))
                continue
            out[i] = self._generate(context, dict(gen_kwargs or {}), doc_to_visual(doc))
            bar.update(1)
        for (_, _code), items in radio_groups.items():
            for k in range(0, len(items), self.batch_size):
                chunk = items[k:k + self.batch_size]
                for (i, _, _), text in zip(chunk, self._ask_radio([d for _, d, _ in chunk], chunk[0][2])):
                    out[i] = text
                bar.update(len(chunk))
        bar.close()
        return out

    def _ask_radio(self, docs, gen_kwargs) -> list[str]:
        """One batch of radio documents, asked as the benchmark runner asks them."""
        from ..runner import TaskRunner

        bench = radio.bench_of(docs[0])
        samples = [radio.sample_of(d) for d in docs]
        max_new = int((gen_kwargs or {}).get("max_new_tokens") or self.max_new_tokens)
        runner = TaskRunner(self.assistant, bench, "generate", {} if bench.kind == "boxes" else [], max_new)
        recs = runner.ask(samples, runner.prepare(samples))
        if bench.kind == "boxes":
            return [json.dumps({"answers": r["answers"]}) for r in recs]
        return [r["answer"] for r in recs]

    def _generate(self, context: str, gen_kwargs: dict, visuals) -> str:
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_new = int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens)
        temperature = float(gen_kwargs.get("temperature") or 0.0)
        pictures = self._pictures(visuals)
        if pictures:
            view = self._view(pictures[0])
            text = self.assistant.ask(view, question=context, max_new_tokens=max_new, temperature=temperature).text
        else:
            text = self._generate_text_only(context, max_new, temperature)
        for stop in until:
            if stop and stop in text:
                text = text.split(stop)[0]
        return text

    def _pictures(self, visuals) -> list:
        from PIL import Image

        flat = []
        for v in visuals or []:
            flat.extend(v if isinstance(v, (list, tuple)) else [v])
        pictures = [v for v in flat if isinstance(v, Image.Image)]
        if len(pictures) > 1 and not self._single_picture_warned:
            from loguru import logger

            logger.warning("radiollava: documents with several pictures are asked about the first one only")
            self._single_picture_warned = True
        return pictures

    def _view(self, picture):
        """A plain picture as a core ModelView (identity transform: no mosaic behind it)."""
        from glue_radiollava.core.profiles import ModelView
        from glue_radiollava.core.transform import Transform

        picture = picture.convert("RGB")
        w, h = picture.size
        return ModelView(picture, Transform(w, h, w, h), self.assistant.profile)

    def _text_inputs(self, context: str):
        loaded = self.assistant.loaded
        messages = []
        if self.assistant.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.assistant.system_prompt}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": context}]})
        prompt = loaded.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        return {k: v.to(loaded.device) for k, v in ids.items()}

    def _generate_text_only(self, context: str, max_new: int, temperature: float) -> str:
        import torch

        loaded = self.assistant.loaded
        inputs = self._text_inputs(context)
        tok = loaded.tokenizer
        gen = {"max_new_tokens": max_new, "do_sample": temperature > 0, "pad_token_id": tok.pad_token_id,
               "eos_token_id": tok.eos_token_id}
        gen.update({"temperature": temperature} if temperature > 0 else {"temperature": None, "top_p": None,
                                                                          "top_k": None})
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, **gen)
        return self.assistant.decode(out[0, inputs["input_ids"].shape[1]:].tolist()).strip()

    # ------------------------------------------------------------ likelihood
    def loglikelihood(self, requests: List[Instance]) -> List[Tuple[float, bool]]:
        import torch

        res = []
        for req in requests:
            context, target, doc_to_visual, doc_id, task, split = req.args
            doc = self._doc(task, split, doc_id)
            continuation = target if isinstance(target, str) else target(doc)
            pictures = self._pictures(doc_to_visual(doc))
            if pictures:
                inputs = self.assistant._inputs(self._view(pictures[0]), context)
            else:
                inputs = self._text_inputs(context)
            tok = self.assistant.loaded.tokenizer
            cont = tok.encode(continuation, add_special_tokens=False)
            prompt = inputs.pop("input_ids")
            inputs.pop("attention_mask", None)
            ids = torch.cat([prompt, torch.tensor([cont], device=prompt.device)], dim=1)
            for key in [k for k, v in inputs.items() if hasattr(v, "shape") and v.dim() == 2
                        and v.shape[1] == prompt.shape[1] and not v.is_floating_point()]:
                inputs[key] = torch.nn.functional.pad(inputs[key], (0, len(cont)))
            with torch.inference_mode():
                logits = self.assistant.loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                     **inputs).logits.float()
            p0 = prompt.shape[1]
            logp = torch.log_softmax(logits[0, p0 - 1:p0 - 1 + len(cont)], dim=-1)
            target_ids = torch.tensor(cont, device=logp.device)
            total = float(logp.gather(1, target_ids[:, None]).sum())
            greedy = bool((logp.argmax(-1) == target_ids).all())
            res.append((total, greedy))
        return res

    def generate_until_multi_round(self, requests) -> List[str]:
        raise NotImplementedError("radiollava: multi-round generation is not supported; "
                                  "use the task's single-round variant")
