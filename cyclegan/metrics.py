"""How good is a translation: cycle error, content preservation, distance to the truth."""
from __future__ import annotations

import warnings

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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (rows), as in FAD:
    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^1/2). Biased upwards for few clips, so compare
    methods only on the same clips."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer clips than dimensions: singular covariances, as expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(ca @ cb)
    root = root.real if np.iscomplexobj(root) else root  # tiny imaginary parts from rounding
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root))


def wilson_interval(hits: list[float], z: float = 1.96) -> dict[str, float] | None:
    """95 % Wilson score interval of a share of hits: with 48 clips one clip moves transfer
    accuracy by 2 points, so a reader needs to see how far the figure could be from the truth."""
    n = len(hits)
    if n == 0:
        return None
    p = float(np.mean(hits))
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return {"low": float((centre - half) / (1 + z * z / n)), "high": float((centre + half) / (1 + z * z / n))}


def paired_gain(model: list[float], baseline: list[float]) -> dict[str, float] | None:
    """How many dB the model's paired LSD is below a baseline's, on the same pairs, with a 95 %
    interval (normal approximation of the paired mean): "clearly better" means its low end > 0."""
    if len(model) < 2:
        return None
    d = np.asarray(baseline) - np.asarray(model)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return {"mean_db": float(d.mean()), "low_db": float(d.mean() - half), "high_db": float(d.mean() + half)}
