"""Audio in and out, and the spectrogram front end shared by training and serving.

    file -> load -> waveform -> analyse -> (model input in [-1, 1], phase)
    model output -> synthesise(phase) -> waveform -> save -> file
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile as sf
import torch

from .config import SpecConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
MIN_RATE, MAX_RATE = 8_000, 192_000
SILENCE_PEAK = 1e-4  # -80 dBFS: below this a clip carries nothing to translate


class AudioError(ValueError):
    """Input audio that cannot be used; the message is meant for the user."""


def _info(path: Path) -> sf._SoundFileInfo:
    if not path.is_file():
        raise AudioError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty")
    try:
        return sf.info(str(path))
    except Exception as e:  # libsndfile's messages are cryptic; name the file instead
        raise AudioError(f"{path.name}: not a readable audio file ({type(e).__name__})") from e


def list_audio(folder: Path | str) -> list[Path]:
    """Every audio file below `folder`, sorted: how training reads a domain and the CLI a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise AudioError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found below this folder")
    return files


def duration(path: Path | str) -> float:
    return float(_info(Path(path)).duration)


def read(path: Path | str, max_seconds: float | None = None,
         notes: list[str] | None = None) -> tuple[np.ndarray, int]:
    """Decode any file soundfile (libsndfile) knows, as (samples, channels) float32.

    `max_seconds` decodes only the beginning, so a long upload never fills the memory. A file
    that is cut short (a truncated upload) is decoded as far as it goes; when `notes` is given,
    a sentence saying how much was read is appended to it for the user.
    """
    path = Path(path)
    info = _info(path)
    sr = int(info.samplerate)
    cap = None if max_seconds is None else int(max_seconds * sr)
    want = info.frames if cap is None else min(info.frames, cap)
    try:
        wave, _ = sf.read(str(path), frames=want, dtype="float32", always_2d=True)
    except Exception as e:  # a decoder that loses sync part-way: keep what it decoded before
        blocks: list[np.ndarray] = []
        try:
            with sf.SoundFile(str(path)) as f:
                blocks.extend(f.blocks(blocksize=1024, frames=want, dtype="float32", always_2d=True))
        except Exception:
            pass
        if not blocks:
            raise AudioError(f"{path.name}: not a readable audio file ({type(e).__name__})") from e
        wave = np.concatenate(blocks)
    # libsndfile's log says when a header promises more than the file holds
    promised, align = (re.search(p, info.extra_info, re.M) for p in (r"^data : (\d+) \(should be", r"Block Align\s*: (\d+)"))
    total = int(promised[1]) // int(align[1]) if promised and align else info.frames
    if notes is not None and len(wave) < (total if cap is None else min(total, cap)):
        notes.append(f"{path.name} is cut short: only its first {len(wave) / sr:.2f} s of "
                     f"{total / sr:.2f} s could be decoded")
    elif notes is not None and "lacks an end-of-stream" in info.extra_info and (cap is None or len(wave) < cap):
        notes.append(f"{path.name} is cut short (it ends without an end-of-stream mark): "
                     f"only {len(wave) / sr:.2f} s could be decoded")
    return wave, sr


def conform(wave: np.ndarray, sr: int, target_sr: int, max_channels: int | None = None) -> np.ndarray:
    """Validate raw samples and bring them to mono float32 at `target_sr`.

    Accepts (samples,) or (samples, channels) arrays of any numeric dtype.
    """
    wave = np.asarray(wave)
    if wave.size == 0:
        raise AudioError("the audio is empty")
    if np.issubdtype(wave.dtype, np.integer):  # PCM as delivered by browsers/Gradio
        wave = wave.astype(np.float32) / np.iinfo(wave.dtype).max
    wave = wave.astype(np.float32, copy=False)
    if wave.ndim == 2 and wave.shape[0] < wave.shape[1] and wave.shape[0] <= 8:
        wave = wave.T  # (channels, samples) -> (samples, channels)
    if wave.ndim > 2:
        raise AudioError(f"expected a 1-D or 2-D array of samples, got shape {wave.shape}")
    channels = 1 if wave.ndim == 1 else wave.shape[1]
    if max_channels is not None and channels > max_channels:
        raise AudioError(f"the audio has {channels} channels; only mono or stereo is supported")
    if not MIN_RATE <= sr <= MAX_RATE:
        raise AudioError(f"sample rate {sr} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")
    if not np.isfinite(wave).all():
        raise AudioError("the audio contains NaN or infinite samples")
    mono = wave if wave.ndim == 1 else wave.mean(axis=1)
    if sr != target_sr:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_usable(wave: np.ndarray, sr: int, min_seconds: float) -> None:
    if len(wave) < min_seconds * sr:
        raise AudioError(f"the audio is {len(wave) / sr:.2f} s long; at least {min_seconds:g} s is needed")
    if np.abs(wave).max() < SILENCE_PEAK:
        raise AudioError("the audio is silent")


def load(path: Path | str, sample_rate: int, max_channels: int | None = None) -> np.ndarray:
    wave, sr = read(path)
    try:
        return conform(wave, sr, sample_rate, max_channels)
    except AudioError as e:
        raise AudioError(f"{Path(path).name}: {e}") from None


def save(path: Path | str, wave: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav (or any format the extension names), clipped to full scale."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16" if path.suffix == ".wav" else None)


def match_level(out: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Same RMS as the input, but never past full scale (a quieter output beats a clipped one)."""
    rms_out = float(np.sqrt(np.mean(out ** 2)))
    gain = float(np.sqrt(np.mean(reference ** 2))) / max(rms_out, 1e-9)
    peak = float(np.abs(out).max()) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (out * gain).astype(np.float32)


# --- spectrogram ---------------------------------------------------------

def _window(spec: SpecConfig) -> torch.Tensor:
    return torch.hann_window(spec.n_fft)


def stft(wave: torch.Tensor, spec: SpecConfig) -> torch.Tensor:
    """(..., samples) -> complex (..., n_freq, frames)."""
    return torch.stft(wave, spec.n_fft, spec.hop_length, window=_window(spec), center=True, return_complex=True)


def istft(spectrum: torch.Tensor, spec: SpecConfig, length: int) -> torch.Tensor:
    return torch.istft(spectrum, spec.n_fft, spec.hop_length, window=_window(spec), center=True, length=length)


def full_scale(spec: SpecConfig) -> float:
    # the STFT magnitude of a full-scale sine at the peak bin: 0 dB on our scale
    return float(_window(spec).sum()) / 2


def to_model(magnitude: torch.Tensor, spec: SpecConfig) -> torch.Tensor:
    """Linear magnitude -> log scale in [-1, 1] (the generator's tanh range)."""
    floor = 10 ** (-spec.db_range / 20)
    db = 20 * torch.log10((magnitude / full_scale(spec)).clamp_min(floor))
    return (db / (spec.db_range / 2) + 1).clamp(-1, 1)


def from_model(x: torch.Tensor, spec: SpecConfig) -> torch.Tensor:
    db = (x.clamp(-1, 1) - 1) * (spec.db_range / 2)
    return full_scale(spec) * 10 ** (db / 20)


def cap_bass(y: Any, x: Any, spec: SpecConfig, hz: float, margin_db: float) -> Any:
    """`y` with its bins below `hz` at most `margin_db` over `x`'s (model scale, torch or numpy)."""
    xp = np if isinstance(y, np.ndarray) else torch
    low = xp.arange(y.shape[-2])[:, None] < spec.bin_at(hz)
    return y - low * (y - x - margin_db / (spec.db_range / 2)).clip(min=0)


DECAY_RISE_DB, DECAY_HOLD = 6.0, 4  # an onset in a bin: its input rises 6 dB over two frames; the line restarts for 4
DECAY_FOLLOW_DB = 40.0  # a line is followed until it is this far past the cut limit: bounded memory, so segments join


def decay_scale(spec: SpecConfig) -> np.ndarray:
    """Each bin's share of the decay set at 500 Hz: sqrt(f / 500 Hz), 0.5-3x (upper partials die first)."""
    return np.clip(np.sqrt(spec.bin_hz / 500), 0.5, 3.0)


def _line_frames(spec: SpecConfig, db_s: float, max_db: float, min_hz: float) -> int:
    """Frames a decay line is followed for (the slowest bin's)."""
    if not (db_s > 0 and max_db > 0 and min_hz >= 0):
        raise ValueError(f"a decay needs a rate and a cut > 0 and a frequency >= 0, not {db_s}, {max_db}, {min_hz}")
    first = min(spec.bin_at(min_hz), spec.n_freq - 1)
    return math.ceil((max_db + DECAY_FOLLOW_DB / decay_scale(spec)[first]) / db_s * spec.sample_rate / spec.hop_length)


def decay_lookback(spec: SpecConfig, db_s: float, max_db: float, min_hz: float) -> int:
    """Frames back that one output frame of `decay` depends on: its slowest line's span, and the
    onset test's frames before that line's start (2 for the rise, DECAY_HOLD - 1 for the hold)."""
    return _line_frames(spec, db_s, max_db, min_hz) + DECAY_HOLD + 1


def decay(y: Any, x: Any, spec: SpecConfig, db_s: float, max_db: float, min_hz: float, last: int = 0) -> Any:
    """`y` (a translation of `x`, model scale, torch or numpy) under a struck string's decay: in each
    bin from `min_hz` up, at most a line falling `db_s` dB/s from its level at `x`'s last onset in
    that bin, and at most `max_db` below itself (both at 500 Hz, times `decay_scale`). A held guitar
    note keeps its flat sustain through the generators, whose reach is shorter than the note.
    `last` > 0: only the last frames, the rest being their past (a stream's)."""
    unit, k, scale = spec.db_range / 2, _line_frames(spec, db_s, max_db, min_hz), decay_scale(spec)[:, None]
    yn, xn = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, np.float64) for v in (y, x))
    rise = np.ones(xn.shape, bool)
    rise[:, 2:] = xn[:, 2:] - xn[:, :-2] > DECAY_RISE_DB / unit
    onset = rise.copy()
    for j in range(1, DECAY_HOLD):
        onset[:, j:] |= rise[:, :-j]
    r, t = db_s * scale * spec.hop_length / spec.sample_rate / unit, np.arange(yn.shape[1])  # per frame
    z = np.pad(np.where(onset, yn + r * t, -np.inf), ((0, 0), (k, 0)), constant_values=-np.inf)
    n = last or yn.shape[1]
    yn, t = yn[:, -n:], t[-n:]
    cap = np.lib.stride_tricks.sliding_window_view(z, k + 1, axis=1)[:, -n:].max(-1) - r * t  # the highest live line
    floor = np.minimum(yn, np.maximum(yn - max_db * scale / unit, -1))  # the cut limit, not below the model's floor
    out = np.where(np.arange(yn.shape[0])[:, None] >= spec.bin_at(min_hz), np.maximum(np.minimum(yn, cap), floor),
                   yn).astype(np.float32)
    return torch.from_numpy(out) if isinstance(y, torch.Tensor) else out


def normalise(wave: np.ndarray) -> tuple[np.ndarray, float]:
    """Peak-normalise so the model always sees the same level; returns the gain used."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    gain = 1.0 / peak if peak > SILENCE_PEAK else 1.0
    return wave * gain, gain


def analyse(wave: np.ndarray, spec: SpecConfig, peak_normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveform -> (model input (n_freq, frames) in [-1, 1], phase angle).

    peak_normalise=False for pieces of a clip that was normalised as a whole."""
    if peak_normalise:
        wave, _ = normalise(wave)
    spectrum = stft(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), spec)
    return to_model(spectrum.abs(), spec), spectrum.angle()


def synthesise(x: torch.Tensor, phase: torch.Tensor, spec: SpecConfig, length: int) -> np.ndarray:
    """Model-scale magnitude + a phase -> waveform (the input's phase is reused)."""
    spectrum = torch.polar(from_model(x, spec), phase)
    return istft(spectrum, spec, length).numpy()


def griffin_lim(x: torch.Tensor, spec: SpecConfig, length: int, n_iter: int = 64) -> np.ndarray:
    """Phase recovered from the magnitude alone, for when the input phase does not fit."""
    return recover_phase(from_model(x, spec).numpy(), spec, length, n_iter)


def recover_phase(magnitude: np.ndarray, spec: SpecConfig, length: int, n_iter: int = 64) -> np.ndarray:
    """Griffin-Lim on a linear (n_freq, frames) magnitude."""
    return librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=spec.hop_length, n_fft=spec.n_fft,
                              win_length=spec.n_fft, length=length, random_state=0)
