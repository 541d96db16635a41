"""Guitar tones: a clean translation, or the same through an amp and cabinet chain (pedalboard).

A one-to-one generator cannot guess how hard a player drives the amp, and one asked for every
tone at once settles on a blend that matches none. So the generator makes the clean electric
guitar and the tone is a real effects chain after it, the way a player's own amp would be.
"""
from __future__ import annotations

import numpy as np
from pedalboard import Compressor, Distortion, HighpassFilter, LowpassFilter, Pedalboard, PeakFilter

TONES = ("clean", "driven")
TONE_TARGETS = ("guitar",)  # instruments whose translations offer a tone


def amp_chain(drive_db: float = 24.0, low_cut_hz: float = 100.0, mid_hz: float = 1_800.0, mid_db: float = 3.0,
              cabinet_hz: float = 9_000.0) -> Pedalboard:
    """Tight low end, compression into a soft-clipping drive, a mid push, then a cabinet roll-off.
    The defaults are the "driven" tone, set on the training families' overdriven and distorted
    presets (bench/tone_distance.py): they keep more top end than a 4x12 cut at 5 kHz would.
    The corpus draws other settings per clip."""
    return Pedalboard([
        HighpassFilter(cutoff_frequency_hz=low_cut_hz),
        Compressor(threshold_db=-24.0, ratio=4.0, attack_ms=5.0, release_ms=120.0),
        Distortion(drive_db=drive_db),
        PeakFilter(cutoff_frequency_hz=mid_hz, gain_db=mid_db, q=0.8),
        LowpassFilter(cutoff_frequency_hz=cabinet_hz),
    ])


def has_tones(target: str) -> bool:
    return target in TONE_TARGETS


def apply_tone(wave: np.ndarray, sample_rate: int, tone: str) -> np.ndarray:
    """`wave` (mono float) in the chosen tone; "clean" returns it untouched."""
    if tone not in TONES:
        raise ValueError(f"unknown tone {tone!r}: use one of {', '.join(TONES)}")
    if tone == "clean":
        return wave
    out = amp_chain()(np.ascontiguousarray(wave, dtype=np.float32)[None], sample_rate)[0]
    return out.astype(np.float32)
