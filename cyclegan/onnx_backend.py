"""The exported ONNX generators on onnxruntime, with a numpy spectrogram front end: no torch.

The graphs live in <model folder>/onnx/ (written by `python -m cyclegan.export_onnx`); the front
end reproduces audio.py's STFT, log scale and ISTFT in numpy (see docs/onnx.md), so a process that
serves only this backend never needs PyTorch for the maths.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import SpecConfig

ONNX_DIR, MANIFEST = "onnx", "manifest.json"
GRAPHS = {"a2b": "a2b.onnx", "b2a": "b2a.onnx"}
INPUT, OUTPUT = "log_magnitude", "translated"  # (batch, 1, n_freq, frames) float32 in [-1, 1], both
# BASIC (constant folding, redundant nodes) measured as fast as EXTENDED and faster than ALL,
# whose NCHWc layout transforms cost more than they save on these thin convolutions
OPT_LEVEL = "ORT_ENABLE_BASIC"


class BackendUnavailable(RuntimeError):
    """The onnx backend cannot run here; the message says what to install or export."""


def export_hint(model_dir: Path) -> str:
    return f"export them with `python -m cyclegan.export_onnx --weights {model_dir}`"


def file_digest(path: Path) -> str:
    """sha256 of a file: the manifest records the weights' so that stale graphs are refused."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_graphs(model_dir: Path) -> dict:
    """The manifest of a model folder's graphs, once they are known to exist and to match its weights."""
    folder = Path(model_dir) / ONNX_DIR
    for name in (MANIFEST, *GRAPHS.values()):
        if not (folder / name).is_file():
            raise BackendUnavailable(f"{folder / name} is missing; {export_hint(model_dir)}")
    manifest = json.loads((folder / MANIFEST).read_text())
    source = Path(model_dir) / manifest.get("weights_file", "")
    if not source.is_file() or manifest.get("weights_sha256") != file_digest(source):
        raise BackendUnavailable(f"the graphs in {folder} were exported from other weights than "
                                 f"the folder's own; {export_hint(model_dir)}")
    return manifest


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("the onnx backend needs onnxruntime: `pip install onnxruntime`") from None
    return onnxruntime


class OnnxGenerator:
    """One exported generator; its session opens on first use (the CLI often needs only one)."""

    def __init__(self, path: Path, threads: int | None = None):
        self.path, self.threads = Path(path), threads or os.cpu_count() or 1
        self._session = None

    def session(self):
        if self._session is None:
            ort = _ort()
            opts = ort.SessionOptions()
            opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVEL)
            opts.intra_op_num_threads, opts.inter_op_num_threads = self.threads, 1
            opts.log_severity_level = 3  # warnings about unused initialisers are noise to a user
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        return self._session

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(n_freq, frames) or (batch, 1, n_freq, frames) float32 -> the same shape."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        batched = x if x.ndim == 4 else x[None, None]
        y = self.session().run([OUTPUT], {INPUT: batched})[0]
        return y if x.ndim == 4 else y[0, 0]


class OnnxGenerators:
    """The pair's two graphs, named like models.Generators' members."""

    def __init__(self, model_dir: Path, threads: int | None = None):
        _ort()
        check_graphs(model_dir)
        folder = Path(model_dir) / ONNX_DIR
        self.a2b, self.b2a = (OnnxGenerator(folder / GRAPHS[k], threads) for k in ("a2b", "b2a"))


# --- the numpy front end: audio.py's spectrogram, to float32 rounding ------------------------

@lru_cache(maxsize=8)
def window(n_fft: int) -> np.ndarray:
    """torch.hann_window(n_fft): the periodic Hann window."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def full_scale(spec: SpecConfig) -> float:
    return float(window(spec.n_fft).sum()) / 2


def stft(wave: np.ndarray, spec: SpecConfig) -> np.ndarray:
    """(samples,) -> complex (n_freq, frames); centred frames, reflection padding (torch.stft's)."""
    padded = np.pad(np.asarray(wave, np.float32), spec.n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, spec.n_fft)[::spec.hop_length]
    return np.fft.rfft(frames * window(spec.n_fft), axis=-1).T


def istft(spectrum: np.ndarray, spec: SpecConfig, length: int) -> np.ndarray:
    """Windowed overlap-add, divided by the summed squared window (torch.istft's)."""
    n_fft, hop, count = spec.n_fft, spec.hop_length, spectrum.shape[1]
    win, chunks = window(n_fft), -(-n_fft // hop)
    frames = np.fft.irfft(spectrum.T, n=n_fft, axis=-1).astype(np.float32) * win
    # cut every frame into hop-long chunks: chunk j of frame i lands on block i + j
    frames = np.pad(frames, ((0, 0), (0, chunks * hop - n_fft))).reshape(count, chunks, hop)
    win2 = np.pad(win ** 2, (0, chunks * hop - n_fft)).reshape(chunks, hop)
    out, env = np.zeros((count + chunks - 1, hop), np.float32), np.zeros((count + chunks - 1, hop), np.float32)
    for j in range(chunks):
        out[j:j + count] += frames[:, j]
        env[j:j + count] += win2[j]
    out, env = out.ravel()[n_fft // 2:], env.ravel()[n_fft // 2:]
    out = np.where(env > 1e-11, out / np.maximum(env, 1e-11), 0)[:length]
    return np.pad(out, (0, length - len(out))).astype(np.float32)


def to_model(magnitude: np.ndarray, spec: SpecConfig) -> np.ndarray:
    """Linear magnitude -> dB re full scale, [-db_range, 0] mapped onto [-1, 1]."""
    floor = 10 ** (-spec.db_range / 20)
    db = 20 * np.log10(np.maximum(magnitude / full_scale(spec), floor))
    return np.clip(db / (spec.db_range / 2) + 1, -1, 1).astype(np.float32)


def from_model(x: np.ndarray, spec: SpecConfig) -> np.ndarray:
    db = (np.clip(x, -1, 1) - 1) * (spec.db_range / 2)
    return (full_scale(spec) * np.power(np.float32(10), db / 20)).astype(np.float32)


def analyse(wave: np.ndarray, spec: SpecConfig) -> tuple[np.ndarray, np.ndarray]:
    """Waveform (already normalised) -> (model input (n_freq, frames), unit phasors of the input)."""
    spectrum = stft(wave, spec)
    magnitude = np.abs(spectrum)
    phasor = np.where(magnitude > 0, spectrum / np.maximum(magnitude, 1e-30), 1).astype(np.complex64)
    return to_model(magnitude, spec), phasor


def synthesise(x: np.ndarray, phasor: np.ndarray, spec: SpecConfig, length: int) -> np.ndarray:
    return istft(from_model(x, spec) * phasor, spec, length)
