"""What a conversion wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ConversionResult:
    """What ``convert`` wrote: ``kind`` is ``model`` or ``adapter``; ``notes`` say what was decided."""

    kind: str
    dst: Path
    tensors: int
    files: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = "model" if self.kind == "model" else "LoRA adapter"
        return f"converted the {what} into {self.dst} ({self.tensors} tensors in {self.files} file(s))"
