"""lmms-eval integration (the ``eval`` extra): a ``radiollava`` model type and the radio tasks B1–B7.

- ``model.py``: ``RadioLlava``, an lmms-eval model backed by the core's loader and Assistant, so
  ``lmms-eval --model radiollava --model_args model=DIR,adapter=ADAPTER`` runs any lmms-eval task
  with any model the core loads (base, LoRA adapter, merged);
- ``radio.py`` and ``tasks/``: lmms-eval task YAMLs ``radio_b1`` … ``radio_b7`` over local files
  (reference JSON, simulator folders, the built-in sets), asked and scored as ``radiollava bench run``
  asks and scores them: prompts and labels from the task catalogue, metrics from ``scoring``.

lmms-eval finds the model through the ``lmms_eval.models`` entry point (``manifest`` below) and the
tasks through ``--include_path`` (``TASKS_DIR``). Nothing here is imported unless lmms-eval is used.
"""

from __future__ import annotations

from pathlib import Path

from glue_radiollava.core.errors import RadioLlavaError

MODEL_NAME = "radiollava"
TASKS_DIR = Path(__file__).resolve().parent / "tasks"
INSTALL = "pip install -e '.[eval]'"


def manifest():
    """The ``lmms_eval.models`` entry point: registers ``--model radiollava``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path="benchmarks.lmms.model.RadioLlava")


def require_lmms_eval():
    """Import lmms-eval or fail with one line saying how to install it."""
    try:
        import lmms_eval  # noqa: F401
        import lmms_eval.evaluator  # noqa: F401
    except ImportError as exc:
        raise RadioLlavaError(f"lmms-eval is not installed ({exc}); install the eval extra: {INSTALL}") from None
    return lmms_eval


def register_model() -> None:
    """Register ``radiollava`` in lmms-eval's model registry (also when the entry point is not installed)."""
    from lmms_eval.models import AVAILABLE_MODELS, MODEL_REGISTRY_V2

    MODEL_REGISTRY_V2.register_manifest(manifest(), overwrite=True)
    AVAILABLE_MODELS[MODEL_NAME] = "RadioLlava"
