"""Random microphone/room EQ and compression on training crops, drawn afresh at every step.

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


def _add(gain: torch.Tensor, crops: tuple[torch.Tensor | None, ...]) -> tuple[torch.Tensor | None, ...]:
    """`gain` (model units) added to each crop, kept in the model's range; None passes through."""
    return tuple(None if c is None else (c + gain.to(c.device)).clamp(-1, 1) for c in crops)


class RandomEQ:
    """Adds to each crop a gain curve (dB) through random values at `ANCHORS_HZ`, each uniform in
    [-max_db, max_db], linear in log-frequency between them and flat outside."""

    def __init__(self, spec: SpecConfig, max_db: float, seed: int):
        freqs = np.maximum(np.arange(spec.n_freq) * spec.sample_rate / spec.n_fft, ANCHORS_HZ[0])
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
        return _add(gain, crops)


class RandomCompressor:
    """A broadband compressor on a share `p` of the crops: a laptop's automatic gain or a guitarist's
    pedal flattens the decays that tell a piano from a guitar, and studio-mild compression (as the
    corpus renders) does not prepare a model for it. Instant attack, a release of 50-300 ms, a
    threshold 3-30 dB under the crop's loudest frame, ratio 1.5-10, make-up gain to that frame."""

    def __init__(self, spec: SpecConfig, p: float, seed: int):
        self.p, self.spec = p, spec
        self.rng = torch.Generator().manual_seed(seed)

    def gains(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, 1, frames) gains in model units for crops `x` (batch, 1, bins, frames)."""
        n, frames = x.shape[0], x.shape[-1]
        u = torch.rand(n, 4, generator=self.rng)
        on, depth, ratio = u[:, 0] < self.p, 3 + 27 * u[:, 1], 1.5 + 8.5 * u[:, 2]
        release_ms = 50 + 250 * u[:, 3]
        db = (x[:, 0].float() + 1) * (self.spec.db_range / 2) - self.spec.db_range  # model units -> dB
        level = 10 * torch.log10((10 ** (db / 10)).sum(1))  # (batch, frames): each frame's power
        # a one-pole release is a fall of 8.69 dB per time constant: the detector holds each peak and
        # falls from it at that rate, i.e. a running max of level + rate * t, minus rate * t
        rate = (8.686 * self.spec.hop_length / self.spec.sample_rate * 1000 / release_ms)[:, None]
        t = torch.arange(frames, dtype=torch.float32)[None]
        held = torch.cummax(level + rate * t, dim=1).values - rate * t
        over = (held - (held.max(1, keepdim=True).values - depth[:, None])).clamp(min=0)
        cut = (1 - 1 / ratio[:, None]) * over
        gain_db = (cut.max(1, keepdim=True).values - cut) * on[:, None]  # 0 at the loudest frame
        return (gain_db / (self.spec.db_range / 2))[:, None, None, :]

    def __call__(self, *crops: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """The gain follows the first crop; crops passed together (a twin pair) share it."""
        gain = self.gains(crops[0])
        return _add(gain, crops)
