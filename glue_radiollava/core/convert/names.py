"""Original LLaVA-NeXT tensor names → transformers 5.x names, and back (for messages).

Checked against transformers' own LLaVA-OneVision conversion script and the in-memory names of
``LlavaOnevisionForConditionalGeneration``:

- ``model.vision_tower.vision_tower.vision_model.*`` → ``model.vision_tower.*`` (SigLIP, no head)
- ``model.mm_projector.0.*`` / ``.2.*`` → ``model.multi_modal_projector.linear_1.*`` / ``linear_2.*``
- ``model.image_newline`` → ``model.image_newline``
- every other ``model.*`` → ``model.language_model.*`` (Qwen2)
- ``lm_head.*`` → ``lm_head.*``
"""

from __future__ import annotations

import re

# (original prefix, transformers 5.x prefix); the first match wins. A prefix without a trailing dot
# names one exact tensor (or module) path.
_RULES: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.vision_tower.vision_model.", "model.vision_tower."),
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.image_newline", "model.image_newline"),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
# Original parts that a LLaVA-OneVision model in transformers has no place for.
_UNSUPPORTED_PARTS = ("model.vision_resampler.", "model.mm_projector.", "model.vision_tower.")
_VISION_LAYER = re.compile(r"^model\.vision_tower\.vision_tower\.vision_model\.encoder\.layers\.(\d+)\.")


def _translate(path: str, pairs) -> str:
    """``path`` with the first matching prefix of ``pairs`` (from, to) replaced; a rule ending in "."
    also matches the module itself ("lm_head" for "lm_head.")."""
    for src, dst in pairs:
        if src.endswith("."):
            if path == src[:-1]:
                return dst[:-1]
            if path.startswith(src):
                return dst + path[len(src):]
        elif path == src or path.startswith(src + "."):
            return dst + path[len(src):]
    return path


def rename(path: str) -> str:
    """Original LLaVA-NeXT tensor or module path → transformers 5.x path (unknown paths unchanged)."""
    return path if path == "model" else _translate(path, _RULES)


def original_name(path: str) -> str:
    """transformers 5.x path → original LLaVA-NeXT path (the inverse of :func:`rename`, for messages)."""
    return _translate(path, tuple((new, old) for old, new in _RULES))


def _is_unsupported(original: str) -> bool:
    if original.startswith("model.vision_tower.vision_tower.vision_model.") or \
            original.startswith(("model.mm_projector.0.", "model.mm_projector.2.")):
        return False
    return original.startswith(_UNSUPPORTED_PARTS)
