"""One feature vector per picture from the model's own vision tower (similarity search, probes).

The vector is the mean over patches of the tower's last hidden state for the picture's base view
(anyres crops are left out); families without a reachable tower use ``get_image_features``
(vision tower + projector), averaged the same way.
"""

from __future__ import annotations

import numpy as np

from .errors import RadioLlavaError


def vision_tower(model):
    """(attribute path, module) of the model's vision tower, or (None, None)."""
    for path in ("vision_tower", "model.vision_tower"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return path, obj
    return None, None


def vision_features(assistant, views, batch_size: int = 16) -> tuple[np.ndarray, str]:
    """One feature vector per picture from the model's frozen vision tower, and what it is."""
    import torch

    model = assistant.loaded.model
    processor = assistant.loaded.processor
    path, tower = vision_tower(model)
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    feats = []
    for i in range(0, len(views), batch_size):
        pictures = [v.picture for v in views[i:i + batch_size]]
        inputs = processor.image_processor(images=pictures, return_tensors="pt")
        pixels = inputs["pixel_values"].to(assistant.loaded.device, dtype)
        with torch.inference_mode():
            if tower is not None:
                if pixels.ndim == 5:          # anyres patches: the first one is the whole picture
                    pixels = pixels[:, 0]
                hidden = tower(pixel_values=pixels).last_hidden_state
                feats.append(hidden.float().mean(dim=1).cpu().numpy())
            elif hasattr(model, "get_image_features"):
                extra = {k: v.to(assistant.loaded.device) for k, v in inputs.items() if k != "pixel_values"}
                out = model.get_image_features(pixel_values=pixels, **extra)
                out = getattr(out, "pooler_output", out)
                feats.append(np.stack([o.float().reshape(-1, o.shape[-1]).mean(0).cpu().numpy() for o in out]))
            else:
                raise RadioLlavaError(f"{assistant.loaded.folder}: no vision tower found to embed pictures")
    what = (f"mean over patches of {path}.last_hidden_state" if tower is not None
            else "mean of get_image_features (vision tower + projector)")
    return np.concatenate(feats, axis=0), what
