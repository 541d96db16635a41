"""The evaluation's fixed-EQ baseline: one gain per frequency bin, from the mean spectra of each
domain's training clips, applied to the input with its phase (what a tone-matching EQ does)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import audio
from .config import SpecConfig
from .metrics import relative_cycle_error


def mean_spectrum(files: list[Path], spec: SpecConfig) -> np.ndarray:
    """Average linear magnitude per bin, as the model sees the audio (peak-normalised, floored)."""
    total, frames = np.zeros(spec.n_freq), 0
    for p in tqdm(files, desc="EQ baseline spectrum", leave=False, disable=len(files) < 50):
        mag = audio.from_model(audio.analyse(audio.load(p, spec.sample_rate), spec)[0], spec).numpy()
        total, frames = total + mag.sum(1), frames + mag.shape[1]
    return total / max(frames, 1)


class EQBaseline:
    """Spectral-envelope transfer: one fixed gain per bin, on the model's log scale.

    The gain is added to the model-scale input and clipped to the same [-db_range, 0] dB range
    the generators' tanh output has; the inverse EQ subtracts it again (the "cycle")."""

    def __init__(self, spectrum_a: np.ndarray, spectrum_b: np.ndarray, spec: SpecConfig):
        self.spec = spec
        gain_db = 20 * np.log10(np.maximum(spectrum_b, 1e-12) / np.maximum(spectrum_a, 1e-12))
        self.gain = torch.from_numpy(gain_db / (spec.db_range / 2)).float()[:, None]  # dB -> model units

    def translate(self, wave: np.ndarray, reverse: bool) -> tuple[np.ndarray, float]:
        """(translated wave, relative forward-cycle error) for A->B, or B->A when reverse."""
        g = -self.gain if reverse else self.gain
        x, angle = audio.analyse(wave, self.spec)
        y = (x + g).clamp(-1, 1)
        rec = (y - g).clamp(-1, 1)
        out = audio.match_level(audio.synthesise(y, angle, self.spec, len(wave)), wave)
        err = relative_cycle_error(audio.from_model(x, self.spec).numpy(), audio.from_model(rec, self.spec).numpy())
        return out, err
