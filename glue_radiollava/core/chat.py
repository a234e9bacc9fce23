"""The chat messages a LLaVA model sees: one function for training and for inference.

A conversation is an optional system prompt, optional few-shot examples (each a question with its
own picture and the expected answer), the earlier turns about the picture (the picture goes with the
first of them) and, at inference, the new question. ``training/finetune.py`` renders a training
record with ``question=None``; ``Assistant`` renders a question with the history so far. Because both
call this function, the prompt tokens a model was trained on are the tokens it is asked with.
"""

from __future__ import annotations

from collections.abc import Sequence


def _user(text: str, with_image: bool) -> dict:
    return {"role": "user", "content": ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def chat_messages(system_prompt: str | None, turns: Sequence[tuple[str, str]] = (), question: str | None = None,
                  examples: Sequence[tuple[str, str]] = ()) -> list[dict]:
    """Messages for ``processor.apply_chat_template``.

    ``examples`` and ``turns`` are (question, answer) pairs; every example carries its own picture,
    the conversation's picture goes with its first user message (a turn, or ``question``)."""
    messages = [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}] if system_prompt else []
    for q, a in examples:
        messages += [_user(q, True), _assistant(a)]
    first = True
    for q, a in turns:
        messages += [_user(q, first), _assistant(a)]
        first = False
    if question is not None:
        messages.append(_user(question, first))
    return messages
