"""Batched ask and score: many pictures, one question, one model call.

The Assistant's ``ask`` and ``score`` take one picture at a time; these take a list of pictures
and keep the Assistant's prompt (system prompt, few-shot examples, chat template) and answer
parsing, so a batch of one gives what ``Assistant.ask``/``score`` give:

- ``ask_batch(assistant, views, question=None, task=None, examples=(), max_new_tokens=...)``
  → ``list[Answer]``: one ``model.generate`` call over left-padded prompts, greedy. Each Answer
  carries ``confidence``, the geometric-mean probability of its generated tokens.
- ``score_batch(assistant, views, answers=None, question=None, task=None, examples=())``
  → ``list[Scores]``: the prompts of all pictures in one forward pass that keeps its KV cache,
  then every allowed answer of every picture in a second pass on that cache (LLaVA families:
  the vision tower and the prompt run once per picture, not once per answer); other families
  run one pass over every (picture, answer) pair, left-padded so the answers end each row.

Used by the benchmarks and by survey scans (``core/scan.py``); ``Assistant.ask_batch``,
``Assistant.score_batch`` and ``Assistant.score`` (a batch of one) call them. They use the
Assistant's public seams: ``question_for``, ``prompt``, ``decode``, ``answer_for``, and the loaded
model's ``on_device``.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Sequence

from .errors import RadioLlavaError

# Per-token type inputs and the value an answer token takes there: PaliGemma's token_type_ids mark
# the answer (suffix, causal) with 1; Qwen's mm_token_type_ids mark text with 0.
ANSWER_TOKEN_TYPE = {"token_type_ids": 1, "mm_token_type_ids": 0}


@dataclass
class Scores:
    """Probabilities of the allowed answers (normalised over them) and raw log-likelihoods."""

    labels: list[str]
    logprobs: list[float]
    probs: list[float]

    @property
    def best(self) -> str:
        return self.labels[max(range(len(self.probs)), key=self.probs.__getitem__)]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.probs))


def _encode(assistant, views, question: str, examples, repeat: int = 1) -> dict:
    """Processor inputs for every view (each ``repeat`` times), left padded, on the model's device."""
    prompt, example_images = assistant.prompt(question, (), examples)
    texts, images = [], []
    nested = getattr(getattr(assistant.loaded, "family", None), "nested_images", False)
    for view in views:
        for _ in range(repeat):
            texts.append(prompt)
            pictures = list(example_images) + [view.picture]
            images.extend([pictures] if nested else pictures)
    processor = assistant.loaded.processor
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    return assistant.loaded.on_device(dict(inputs))


def ask_batch(assistant, views: Sequence, question: str | None = None, task=None, examples=(),
              max_new_tokens: int = 64) -> list:
    """Generate greedily for every view in one ``generate`` call → one core ``Answer`` per view."""
    import torch

    if not views:
        return []
    question, task = assistant.question_for(question, task)
    t0 = time.perf_counter()
    inputs = _encode(assistant, views, question, examples)
    tok = assistant.loaded.tokenizer
    prompt_len = inputs["input_ids"].shape[1]
    t1 = time.perf_counter()
    with torch.inference_mode():
        out = assistant.loaded.model.generate(
            **inputs, max_new_tokens=int(max_new_tokens), do_sample=False, temperature=None, top_p=None,
            top_k=None, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            output_scores=True, return_dict_in_generate=True)
    t2 = time.perf_counter()
    new_ids = out.sequences[:, 1:] if assistant.encoder_decoder else out.sequences[:, prompt_len:]
    if out.scores:   # log-probability of each chosen token (greedy: the top one)
        logp = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in out.scores], dim=1)
        token_logp = logp.gather(2, new_ids[:, :logp.shape[1], None].to(logp.device))[..., 0].cpu()
    else:
        token_logp = torch.zeros(new_ids.shape)
    answers = []
    stop = {t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None}
    for k, (view, row) in enumerate(zip(views, new_ids.tolist())):
        n = next((i + 1 for i, t in enumerate(row) if t in stop), len(row))  # up to and with EOS
        text = assistant.decode(row[:n]).strip()
        timings = {"render_s": None, "prepare_s": round((t1 - t0) / len(views), 4),
                   "generate_s": round((t2 - t1) / len(views), 4), "new_tokens": n, "batch": len(views)}
        answer = assistant.answer_for(view, question, task, text, False, timings)
        answer.confidence = round(float(torch.exp(token_logp[k, :n].mean())), 6) if n else None
        answers.append(answer)
    return answers


def _keeps_logits(model) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def score_batch(assistant, views: Sequence, answers: Sequence[str] | None = None, question: str | None = None,
                task=None, examples=()) -> list:
    """Probability of each allowed answer for every view → core ``Scores`` (normalised over the answers)."""
    import torch

    if not views:
        return []
    question, task = assistant.question_for(question, task)
    answers = list(answers if answers is not None else (task.labels if task else ()))
    if not answers:
        raise RadioLlavaError("score needs the allowed answers (a closed-set task or a list of answers)")
    n = len(answers)
    tok = assistant.loaded.tokenizer
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []
    answer_ids = [tok.encode(a, add_special_tokens=False) + end for a in answers]
    if assistant.encoder_decoder:      # Florence-2: the answers go through the decoder
        totals = _answer_logprobs_decoder(assistant, views, question, examples, answer_ids)
    elif _can_share_prompt(assistant):
        totals = _answer_logprobs_cached(assistant, views, question, examples, answer_ids)
    else:
        totals = _answer_logprobs_rows(assistant, views, question, examples, answer_ids)
    out = []
    for i in range(len(views)):
        lp = totals[i * n:(i + 1) * n]
        probs = torch.softmax(torch.tensor(lp), dim=0).tolist()
        out.append(Scores(list(answers), lp, probs))
    return out


def _cache_arg(model) -> str | None:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return None
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def _can_share_prompt(assistant) -> bool:
    """LLaVA families keep 1-D positions, so answers can continue a shared, expanded prompt cache."""
    return assistant.loaded.family.name.startswith("llava") and _cache_arg(assistant.loaded.model) is not None


def _answer_logprobs_cached(assistant, views, question, examples, answer_ids) -> list[float]:
    """Prompt pass once per view (cache kept), then all answers on the cache repeated per answer."""
    import torch

    model = assistant.loaded.model
    tok = assistant.loaded.tokenizer
    n = len(answer_ids)
    inputs = _encode(assistant, views, question, examples)
    mask = inputs["attention_mask"]
    cache_arg = _cache_arg(model)
    kwargs = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    with torch.inference_mode():
        first = model(**inputs, use_cache=True, **kwargs)
    first_logp = torch.log_softmax(first.logits[:, -1].float(), dim=-1)       # predicts answer token 0
    rows = len(views) * n
    m = max(len(a) for a in answer_ids) - 1
    rest = None
    if m > 0:
        cache = getattr(first, "cache", None) or getattr(first, "past_key_values", None)
        cache.batch_repeat_interleave(n)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        feed = torch.full((rows, m), pad, dtype=inputs["input_ids"].dtype)
        feed_mask = torch.zeros((rows, m), dtype=mask.dtype)
        for r in range(rows):                       # right padding after the answers is harmless
            a = answer_ids[r % n][:-1]
            feed[r, :len(a)] = torch.tensor(a, dtype=feed.dtype)
            feed_mask[r, :len(a)] = 1
        device = assistant.loaded.device
        full_mask = torch.cat([mask.repeat_interleave(n, dim=0), feed_mask.to(mask.device)], dim=1)
        with torch.inference_mode():
            second = model(input_ids=feed.to(device), attention_mask=full_mask.to(device),
                           **{cache_arg: cache}, use_cache=True)
        rest = torch.log_softmax(second.logits.float(), dim=-1)                # [rows, m, vocab]
    totals = []
    for r in range(rows):
        a = answer_ids[r % n]
        total = float(first_logp[r // n, a[0]])
        for k in range(1, len(a)):
            total += float(rest[r, k - 1, a[k]])
        totals.append(total)
    return totals


def _answer_logprobs_rows(assistant, views, question, examples, answer_ids) -> list[float]:
    """One pass over every (view, answer) row, left padded so each answer ends its row."""
    import torch

    tok = assistant.loaded.tokenizer
    n = len(answer_ids)
    inputs = _encode(assistant, views, question, examples, repeat=n)
    ids, mask = inputs.pop("input_ids"), inputs.pop("attention_mask")
    per_token = {k: inputs.pop(k) for k in list(inputs) if hasattr(inputs[k], "shape")
                 and tuple(inputs[k].shape) == tuple(ids.shape)}       # e.g. mm_token_type_ids
    rows = ids.shape[0]
    keep = max(len(a) for a in answer_ids) + 1
    width = ids.shape[1] + keep - 1
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    new_ids = torch.full((rows, width), pad, dtype=ids.dtype)
    new_mask = torch.zeros((rows, width), dtype=mask.dtype)
    new_extra = {k: torch.zeros((rows, width), dtype=v.dtype) for k, v in per_token.items()}
    for r in range(rows):                     # left padding: every answer ends its row
        real = mask[r].bool().cpu()
        prompt = ids[r].cpu()[real]
        a = torch.tensor(answer_ids[r % n], dtype=ids.dtype)
        row = torch.cat([prompt, a])
        new_ids[r, width - len(row):] = row
        new_mask[r, width - len(row):] = 1
        for k, v in per_token.items():
            new_extra[k][r, width - len(row):width - len(a)] = v[r].cpu()[real]
            new_extra[k][r, width - len(a):] = ANSWER_TOKEN_TYPE.get(k, 0)
    device = assistant.loaded.device
    kwargs = {k: v.to(device) for k, v in new_extra.items()}
    model = assistant.loaded.model
    if _keeps_logits(model):
        kwargs["logits_to_keep"] = keep
    with torch.inference_mode():
        logits = model(input_ids=new_ids.to(device), attention_mask=new_mask.to(device),
                       **inputs, **kwargs).logits.float()
    logits = logits[:, -keep:]                 # position j predicts the token at j + 1
    logp = torch.log_softmax(logits, dim=-1)
    totals = []
    for r in range(rows):
        a = answer_ids[r % n]
        positions = torch.arange(keep - 1 - len(a), keep - 1, device=logp.device)
        totals.append(float(logp[r, positions, torch.tensor(a, device=logp.device)].sum()))
    return totals


def _answer_logprobs_decoder(assistant, views, question, examples, answer_ids) -> list[float]:
    """Encoder–decoder scoring: prompt and picture through the encoder (each view once per answer),
    each answer through the decoder after ``decoder_prefix`` (as ``generate`` starts), right padded."""
    import torch

    from .models import decoder_prefix

    tok = assistant.loaded.tokenizer
    n = len(answer_ids)
    inputs = _encode(assistant, views, question, examples, repeat=n)
    prefix = decoder_prefix(assistant.loaded.model)
    rows = len(views) * n
    width = len(prefix) + max(len(a) for a in answer_ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    dec = torch.full((rows, width), pad, dtype=torch.long)
    dec_mask = torch.zeros((rows, width), dtype=torch.long)
    for r in range(rows):
        row = prefix + answer_ids[r % n]
        dec[r, :len(row)] = torch.tensor(row)
        dec_mask[r, :len(row)] = 1
    device = assistant.loaded.device
    with torch.inference_mode():
        logits = assistant.loaded.model(**inputs, decoder_input_ids=dec.to(device),
                                        decoder_attention_mask=dec_mask.to(device)).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    p0 = len(prefix)
    return [float(logp[r, torch.arange(p0 - 1, p0 - 1 + len(answer_ids[r % n])),
                       torch.tensor(answer_ids[r % n])].sum()) for r in range(rows)]
