"""Recording conditions drawn per clip and applied with pedalboard: room, mic EQ, noise,
compression, level and a lossy codec (plus a detune the renderer applies).

Two spaces: "studio" (training, selection and the plain evaluation) and "laptop" (held out:
larger, wetter rooms, a small resonant microphone, hard compression, more noise and a low-rate
MP3), so the evaluation can ask how a model fares under conditions it never met.
"""
from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from pedalboard import (Compressor, HighpassFilter, HighShelfFilter, LowpassFilter, LowShelfFilter, MP3Compressor,
                        PeakFilter, Pedalboard, Reverb)

MP3_RATE = 32_000  # LAME encodes 32/44.1/48 kHz; other rates go through it resampled


@dataclass(frozen=True)
class Space:
    """Ranges (low, high) of one kind of recording; a probability of 0 leaves a stage out."""
    name: str
    detune_cents: tuple[float, float]
    room_p: float
    room_size: tuple[float, float]
    room_wet: tuple[float, float]
    highpass_hz: tuple[float, float]
    lowpass_hz: tuple[float, float]
    peaks: int
    peak_db: tuple[float, float]
    shelf_db: tuple[float, float]
    compress_p: float
    threshold_db: tuple[float, float]
    ratio: tuple[float, float]
    mp3_p: float
    mp3_quality: tuple[float, float]  # LAME VBR: 0 best, 9.5 worst
    level_db: tuple[float, float]
    noise_db: tuple[float, float]


SPACES = {
    "studio": Space("studio", (-12, 12), 0.7, (0.05, 0.5), (0.03, 0.25), (25, 120), (9_000, 12_000), 1, (-6, 6),
                    (-6, 4), 0.5, (-30, -12), (1.5, 4), 0.3, (2, 7), (-20, -1), (-75, -55)),
    "laptop": Space("laptop", (-25, 25), 1.0, (0.5, 0.85), (0.2, 0.4), (150, 300), (6_000, 9_000), 2, (3, 9),
                    (-10, -4), 1.0, (-40, -25), (4, 10), 1.0, (7, 9.5), (-12, -1), (-55, -42)),
}


def draw(rng: np.random.Generator, space: str = "studio") -> dict:
    """One clip's conditions, as plain numbers (for the manifest)."""
    s, u = SPACES[space], lambda r: float(rng.uniform(*r))
    p: dict = {"space": space, "detune_cents": u(s.detune_cents)}
    if rng.random() < s.room_p:
        p["room"] = {"size": u(s.room_size), "wet": u(s.room_wet), "damping": u((0.2, 0.9))}
    p["eq"] = {"highpass_hz": u(s.highpass_hz), "lowpass_hz": u(s.lowpass_hz),
               "low_shelf_db": u(s.shelf_db), "high_shelf_db": u(s.shelf_db),
               "peaks": [[float(np.exp(rng.uniform(np.log(250), np.log(5_000)))), u(s.peak_db), u((0.5, 2.5))]
                         for _ in range(s.peaks)]}
    if rng.random() < s.compress_p:
        p["compressor"] = {"threshold_db": u(s.threshold_db), "ratio": u(s.ratio)}
    if rng.random() < s.mp3_p:
        p["mp3_quality"] = u(s.mp3_quality)
    p["level_db"], p["noise_db"] = u(s.level_db), u(s.noise_db)
    return _rounded(p)


def _rounded(x):
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return round(x, 4) if isinstance(x, float) else x


def _room_and_mic(p: dict, sr: int) -> Pedalboard:
    eq, stages = p["eq"], []
    if "room" in p:
        r = p["room"]
        stages.append(Reverb(room_size=r["size"], damping=r["damping"], wet_level=r["wet"], dry_level=1.0,
                             width=0.0))
    stages += [HighpassFilter(eq["highpass_hz"]), LowpassFilter(min(eq["lowpass_hz"], 0.45 * sr)),
               LowShelfFilter(250.0, eq["low_shelf_db"]), HighShelfFilter(min(4_000.0, 0.3 * sr), eq["high_shelf_db"])]
    stages += [PeakFilter(min(f, 0.4 * sr), g, q) for f, g, q in eq["peaks"]]
    return Pedalboard(stages)


def _mp3(x: np.ndarray, sr: int, quality: float) -> np.ndarray:
    up = librosa.resample(x, orig_sr=sr, target_sr=MP3_RATE) if sr not in (32_000, 44_100, 48_000) else x
    coded = MP3Compressor(vbr_quality=quality)(up[None].astype(np.float32), MP3_RATE if up is not x else sr)[0]
    back = librosa.resample(coded, orig_sr=MP3_RATE, target_sr=sr) if up is not x else coded
    return np.pad(back, (0, max(0, len(x) - len(back))))[: len(x)]


def record(x: np.ndarray, p: dict, sr: int, hiss: np.random.Generator) -> np.ndarray:
    """`x` (dry mono audio) as recorded under conditions `p`: room and mic, the preamp's noise
    (from `hiss`, so two clips under one draw never share noise samples), compression, level,
    codec; never clipped."""
    x = _room_and_mic(p, sr)(np.asarray(x, np.float32)[None], sr)[0].astype(np.float64)
    x = x / max(np.abs(x).max(), 1e-9) * 10 ** (p["level_db"] / 20)
    x = x + hiss.standard_normal(len(x)) * 10 ** (p["noise_db"] / 20)
    if "compressor" in p:
        c = p["compressor"]
        x = Compressor(threshold_db=c["threshold_db"], ratio=c["ratio"], attack_ms=5.0,
                       release_ms=120.0)(x[None].astype(np.float32), sr)[0].astype(np.float64)
        x = x / max(np.abs(x).max(), 1e-9) * 10 ** (p["level_db"] / 20)  # make-up gain
    if "mp3_quality" in p:
        x = _mp3(x.astype(np.float32), sr, p["mp3_quality"]).astype(np.float64)
    return (x / max(1.0, np.abs(x).max() / 0.999)).astype(np.float32)
