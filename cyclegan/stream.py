"""Translate audio as it arrives, a chunk at a time, for the app's live mode.

The generators are time-local (per-frame norms, convolutions with a finite reach), so a
chunk can be translated exactly if it is cut out of the stream with enough context on both
sides. A `StreamingTranslator` keeps the last `context` samples it has heard and holds back
as much output as the look-ahead needs: what it returns, concatenated, equals the offline
translation of the same audio (`Translator.translate(..., match_level=False)` times the
inverse of the gain), at a delay of one look-ahead.

    st = StreamingTranslator(translator, reverse=False)
    for chunk in chunks:            # mono float at the model's rate
        play(st.feed(chunk))
    play(st.flush())
"""
from __future__ import annotations

import math
import time
from functools import lru_cache

import numpy as np
import soxr
import torch

from . import audio
from .config import check_strength
from .models import reach_bound
from .tone import amp_chain, has_tones
from .translate import Translator

WINDOW_FRAMES = 4  # how far the STFT and the overlap-add reach, in frames, past a generator's own reach


def reach(translator: Translator, reverse: bool, strength: float = 1.0, tol: float = 1e-6,
          frames: int | None = None) -> int:
    """Frames either side over which one input frame changes a translation at `strength` by more than
    `tol` (model units; 1e-6 is ~1e-4 dB, far below what a 16-bit output can show): measured
    by flipping one frame. The strict receptive field is wider, but its edge adds nothing audible,
    and every frame of reach is latency. Cached: however it is called, one probe per setting."""
    return _probe(translator, bool(reverse), float(strength), float(tol), frames)


@lru_cache(maxsize=8)
def _probe(translator: Translator, reverse: bool, strength: float, tol: float, frames: int | None) -> int:
    net, _ = translator.generator(reverse)
    frames = frames or max(512, 4 * math.ceil(strength) * reach_bound(translator.cfg.model))
    x = torch.linspace(-1, 1, translator.spec.n_freq * frames).reshape(translator.spec.n_freq, frames).sin()
    mid = frames // 2
    bumped = x.clone()
    bumped[:, mid] = -bumped[:, mid]
    diff = translator.apply(net, bumped, strength) - translator.apply(net, x, strength)
    changed = torch.nonzero(diff.abs().amax(0) > tol).flatten()
    if len(changed) == 0:
        return 0
    far = int(max(mid - changed.min(), changed.max() - mid))
    if far >= mid - 1:
        raise ValueError(f"the generator reaches past {mid} frames; probe with more frames")
    return far


reach.cache_info, reach.cache_clear = _probe.cache_info, _probe.cache_clear  # lru_cache's own interface


class StreamDecay:
    """`audio.decay` across a stream's windows: it keeps the frames (input, and output before the cut) that a
    frame's cut looks back on, so each window's frames are cut as the offline translation's are."""

    def __init__(self, translator: Translator):
        c, self.spec = translator.cfg, translator.spec
        self.args = (c.decay_db_s, c.decay_max_db, c.decay_min_hz)
        self.keep = audio.decay_lookback(self.spec, *self.args)
        self.x = self.y = np.zeros((self.spec.n_freq, 0), np.float32)
        self.end = 0  # the stream frame after the last one kept

    def __call__(self, x: torch.Tensor, y: torch.Tensor, first: int, start: int, stop: int) -> torch.Tensor:
        """`y` (the translation of window `x`, whose frame 0 is stream frame `first`) with the frames that
        reach into stream samples [start, stop) cut; `start` is where the last call's `stop` was."""
        hop = self.spec.hop_length
        lo, hi = max(first, start // hop - WINDOW_FRAMES), min(first + x.shape[1], -(-stop // hop) + WINDOW_FRAMES)
        a, b, cut = lo - first, hi - first, self.x.shape[1] - (self.end - lo)  # history frames before lo
        xs = np.concatenate([self.x[:, :cut], x[:, a:b].numpy()], 1)
        ys = np.concatenate([self.y[:, :cut], y[:, a:b].numpy()], 1)
        self.x, self.y, self.end = xs[:, -self.keep:], ys[:, -self.keep:], hi
        out = y.clone()
        out[:, a:b] = torch.from_numpy(audio.decay(ys, xs, self.spec, *self.args, last=b - a))
        return out


class StreamingTranslator:
    """Stateful one-direction translation of a stream at the model's sample rate.

    gain: the level the model sees (the offline path peak-normalises the whole clip); None
    follows the loudest sample heard so far, for a live input whose peak is unknown.
    step_seconds: run the model only once this much new output is due. Each run also computes
    both contexts, so steps shorter than the look-ahead cost more than they gain in delay.
    strength: as in `Translator.translate`. The Live tab keeps 1 (one pass): a second pass widens
    the look-ahead (shipped guitar→piano: 0.82 s at 1, 1.15 s at 1.5, with 0.1 s steps).
    decay: as in `Translator.translate`; it looks only back, so the look-ahead stays.
    """

    def __init__(self, translator: Translator, reverse: bool = False, gain: float | None = None,
                 tone: str = "clean", step_seconds: float = 0.0, strength: float = 1.0, decay: bool = False):
        check_strength(strength)
        if decay:
            translator.cfg.check_decay(translator.target(reverse))
        self.decay = StreamDecay(translator) if decay else None
        self.tr, self.reverse, self.fixed_gain, self.strength = translator, reverse, gain, strength
        spec, factor = translator.spec, 2 ** translator.cfg.model.n_down
        self.hop = spec.hop_length
        self.align = factor * self.hop  # windows start on the generator's down-sampling grid
        frames = reach(translator, reverse, self.strength) + WINDOW_FRAMES
        self.context = math.ceil(frames / factor) * factor * self.hop  # samples of context each side
        self.step = max(self.align, math.ceil(step_seconds * spec.sample_rate / self.align) * self.align)
        target = translator.target(reverse)
        self.board = amp_chain() if tone != "clean" and has_tones(target) else None
        if tone != "clean" and self.board is None:
            raise ValueError(f"a tone applies to translations into guitar, not into {target}")
        self.buffer = np.zeros(0, np.float32)
        self.start = 0  # stream position of buffer[0]
        self.emitted = 0  # stream position up to which output has been returned
        self.peak = 0.0

    @property
    def heard(self) -> int:
        return self.start + len(self.buffer)

    @property
    def lookahead_seconds(self) -> float:
        """The algorithmic delay: the longest any sample waits for later input before it is output."""
        return (self.context + self.step) / self.tr.spec.sample_rate

    def feed(self, wave: np.ndarray) -> np.ndarray:
        """Take the next samples; return the output that is now final (possibly none)."""
        wave = np.asarray(wave, np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, wave])
        if wave.size:
            self.peak = max(self.peak, float(np.abs(wave).max()))
        ready = (self.heard - self.context) // self.align * self.align
        if ready - self.emitted < self.step:
            return np.zeros(0, np.float32)
        return self._emit(ready, ready + self.context)

    def flush(self) -> np.ndarray:
        """The rest of the output, once the stream has ended; the translator is then spent."""
        out = self._emit(self.heard, self.heard) if self.heard > self.emitted else np.zeros(0, np.float32)
        self.buffer, self.start = np.zeros(0, np.float32), self.heard
        return out

    def gain(self) -> float:
        if self.fixed_gain is not None:
            return self.fixed_gain
        return 1.0 / self.peak if self.peak > audio.SILENCE_PEAK else 1.0

    def _emit(self, ready: int, hi: int) -> np.ndarray:
        """Translate the window [emitted - context, hi) and return its samples [emitted, ready)."""
        lo, gain, spec = max(0, self.emitted - self.context), self.gain(), self.tr.spec
        piece = self.buffer[lo - self.start:hi - self.start] * gain
        x, angle = audio.analyse(piece, spec, peak_normalise=False)
        y = self.tr.apply(self.tr.generator(self.reverse)[0], x, self.strength)
        if self.decay is not None:
            y = self.decay(x, y, lo // self.hop, self.emitted, ready)
        out = audio.synthesise(y, angle, spec, len(piece))[self.emitted - lo:ready - lo]
        if self.board is not None:  # the amp sees the model's level, as it does offline
            # a fixed buffer size: pedalboard re-prepares (and resets) its plugins when a chunk outgrows it
            out = self.board(np.ascontiguousarray(out, np.float32)[None], spec.sample_rate, reset=False,
                             buffer_size=512)[0]
        self.emitted = ready
        keep = max(0, ready - self.context)  # what the next window's left context needs
        self.buffer, self.start = self.buffer[keep - self.start:], keep
        return (out / gain).astype(np.float32)


class Resampler:
    """A browser's microphone rate to the model's, continuous across chunks (soxr's stream)."""

    def __init__(self, in_rate: int, out_rate: int):
        self.in_rate = in_rate
        self.stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")

    def __call__(self, wave: np.ndarray, last: bool = False) -> np.ndarray:
        wave = np.ascontiguousarray(wave, np.float32)
        return wave if self.stream is None else self.stream.resample_chunk(wave, last=last)


class LiveStream:
    """A browser microphone's chunks (any rate, int16 or float, mono or stereo) in, the
    translation out at the model's rate; it keeps count of the audio heard and the compute spent."""

    def __init__(self, translator: Translator, reverse: bool, rate: int, tone: str = "clean",
                 step_seconds: float = 0.25, key: tuple = (), decay: bool = False):
        self.key, self.rate = key, rate  # key: the settings it was made for; a change starts a new one
        self.resample = Resampler(rate, translator.spec.sample_rate)
        self.stream = StreamingTranslator(translator, reverse, tone=tone, step_seconds=step_seconds, decay=decay)
        self.heard_s = self.compute_s = 0.0

    def feed(self, data: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        mono = audio.conform(data, self.rate, self.rate, max_channels=2)  # same rate: the resampler keeps state
        out = self.stream.feed(self.resample(mono))
        self.compute_s += time.perf_counter() - start
        self.heard_s += len(mono) / self.rate
        return out

    def status(self) -> str:
        share = self.compute_s / max(self.heard_s, 1e-9)
        return (f"Delay in the model {self.stream.lookahead_seconds:.2f} s, plus the browser's round trip · "
                f"compute {share:.0%} of the audio's duration ({self.heard_s:.1f} s heard)")
