"""Random microphone/room EQ on training crops, drawn afresh at every step.

The corpus renders each clip under one drawn recording condition; a model that meets a laptop
microphone's bass cut or a boxy room at serving time has then seen only a few hundred such
curves. A smooth random gain over log-frequency, added to the (log-magnitude) crop, is an EQ at
no cost, so every crop the model sees sounds as if recorded through a different microphone.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import SpecConfig

ANCHORS_HZ = (50.0, 150.0, 450.0, 1_350.0, 4_000.0, 12_000.0)  # about 1.6 octaves apart


class RandomEQ:
    """Adds to each crop a gain curve (dB) through random values at `ANCHORS_HZ`, each uniform in
    [-max_db, max_db], linear in log-frequency between them and flat outside."""

    def __init__(self, spec: SpecConfig, max_db: float, seed: int):
        freqs = np.maximum(spec.bin_hz, ANCHORS_HZ[0])
        eye = np.eye(len(ANCHORS_HZ))
        # (anchors, bins): the interpolation weights, so a batch of curves is one matrix product
        self.basis = torch.tensor(np.stack([np.interp(np.log(freqs), np.log(ANCHORS_HZ), row) for row in eye]),
                                  dtype=torch.float32)
        self.scale = max_db / (spec.db_range / 2)  # dB -> the model's [-1, 1] units
        self.rng = torch.Generator().manual_seed(seed)

    def curves(self, batch: int) -> torch.Tensor:
        """(batch, 1, bins, 1) gains in model units."""
        values = (torch.rand(batch, len(ANCHORS_HZ), generator=self.rng) * 2 - 1) * self.scale
        return (values @ self.basis)[:, None, :, None]

    def __call__(self, *crops: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """Each row gets its own curve; crops passed together (a twin input and its target)
        share the row's curve, as one recording would. None passes through."""
        gain = self.curves(crops[0].shape[0])
        return tuple(None if c is None else (c + gain.to(c.device)).clamp(-1, 1) for c in crops)
