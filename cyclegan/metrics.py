"""How good is a translation: cycle error, content preservation, distance to the truth."""
from __future__ import annotations

import librosa
import mir_eval
import numpy as np
import torch

from . import audio
from .config import SpecConfig


def relative_cycle_error(x: torch.Tensor | np.ndarray, reconstruction: torch.Tensor | np.ndarray) -> float:
    """The report's metric: mean|G_BA(G_AB(x)) - x| / mean|x|, on linear magnitudes."""
    x, r = np.asarray(x, dtype=np.float64), np.asarray(reconstruction, dtype=np.float64)
    return float(np.abs(r - x).mean() / max(np.abs(x).mean(), 1e-12))


def _magnitude(wave: np.ndarray, spec: SpecConfig) -> np.ndarray:
    return audio.stft(torch.from_numpy(np.asarray(wave, dtype=np.float32)), spec).abs().numpy()


def log_spectral_distance(estimate: np.ndarray, reference: np.ndarray, spec: SpecConfig, span_db: float = 80.0) -> float:
    """RMS dB difference per frame, averaged; both level-matched and floored span_db below the reference peak."""
    n = min(len(estimate), len(reference))
    est, ref = estimate[:n], reference[:n]
    est = est * (np.sqrt(np.mean(ref ** 2)) / max(np.sqrt(np.mean(est ** 2)), 1e-12))
    e_db, r_db = (20 * np.log10(np.maximum(_magnitude(w, spec), 1e-10)) for w in (est, ref))
    floor = r_db.max() - span_db
    diff = np.maximum(e_db, floor) - np.maximum(r_db, floor)
    return float(np.sqrt((diff ** 2).mean(axis=0)).mean())


def chroma_similarity(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """Mean cosine similarity of chroma frames where both clips are sounding."""
    n = min(len(a), len(b))
    ca, cb = (librosa.feature.chroma_stft(y=w[:n], sr=sr, hop_length=512, norm=None) for w in (a, b))
    energy = np.minimum(ca.sum(0), cb.sum(0))
    keep = energy > 0.05 * energy.max() if energy.max() > 0 else energy > 0
    if not keep.any():
        return 0.0
    ca, cb = ca[:, keep], cb[:, keep]
    cos = (ca * cb).sum(0) / np.maximum(np.linalg.norm(ca, axis=0) * np.linalg.norm(cb, axis=0), 1e-12)
    return float(cos.mean())


def onset_f_measure(reference: np.ndarray, estimate: np.ndarray, sr: int, window: float = 0.05) -> float:
    """Do the notes start at the same times? mir_eval's F-measure with a 50 ms window."""
    ref, est = (librosa.onset.onset_detect(y=w, sr=sr, units="time") for w in (reference, estimate))
    if len(ref) == 0 and len(est) == 0:
        return 1.0
    if len(ref) == 0 or len(est) == 0:
        return 0.0
    return float(mir_eval.onset.f_measure(ref, est, window=window)[0])
