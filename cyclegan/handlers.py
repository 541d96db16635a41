"""The app's request handlers: read an upload, translate it, draw what changed, stream live chunks.

Gradio-facing (bad input becomes a one-sentence `gr.Error`), but no layout: app.py lays out
the page over these. Serving code: it imports nothing from the training side.
"""
from __future__ import annotations

import atexit
import ctypes
import io
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import soundfile as sf

from . import audio, live_player, plots, weights
from .config import check_strength
from .stream import LiveStream, reach
from .tone import TONES, has_tones
from .translate import MIN_SECONDS, Translation, Translator

MAX_SECONDS = 60.0  # longer uploads are trimmed: bounds a request's time and memory on a small CPU box
KEEP_OUTPUTS_S = 3600  # our wavs/pngs are copied into Gradio's cache on return; ours can go after this
N_OUTPUTS = 8  # translated, reconstructed, 3 spectrograms, summary, difference image, average spectra
try:  # glibc keeps freed arenas; malloc_trim hands them back after a request (absent elsewhere)
    _TRIM = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):
    _TRIM = None


# a 10 s clip in two segments, one per core: about half the wait for a single visitor
TRANSLATOR = {"segment_frames": 1024, "workers": 2}


def give_back_memory() -> None:
    if _TRIM is not None:
        _TRIM(0)


@dataclass
class App:
    """Everything loaded once at start-up: the directions and one Translator per model folder."""
    directions: dict[str, weights.Direction]
    translators: dict[Path, Translator]
    spectra: dict[Path, dict[str, np.ndarray]]  # each model's average training spectra, if saved
    out_root: Path

    @classmethod
    def load(cls, weights_root: Path) -> App:
        found = weights.directions(weights_root)
        if not found:
            raise FileNotFoundError(f"no trained model under {weights_root}")
        translators = {d.model_dir: Translator(d.model_dir, device="cpu", **TRANSLATOR) for d in found}
        out_root = Path(tempfile.mkdtemp(prefix="timbre-app-"))
        atexit.register(shutil.rmtree, out_root, ignore_errors=True)
        return cls({d.value: d for d in found}, translators, {m: weights.load_spectra(m) for m in translators},
                   out_root)

    @property
    def sample_rate(self) -> int:
        """The first model's rate: what an upload is checked at and the live output plays at."""
        return next(iter(self.translators.values())).spec.sample_rate

    def direction(self, value: str | None) -> weights.Direction:
        d = self.directions.get(value or "")
        if d is None:
            raise gr.Error(f"Unknown direction {value!r}; choose one of: {', '.join(self.directions)}.")
        return d

    def decays(self, value: str | None) -> bool:
        """Whether a direction ends on the instrument its model decays into (`decay_into` in its config.json)."""
        d = self.direction(value)
        return self.translators[d.model_dir].cfg.decays(d.target)

    def read(self, audio_path: str | None, sample_rate: int) -> tuple[np.ndarray, list[str]]:
        """The usable, mono, resampled audio of an upload and what the user should know about it."""
        if not audio_path:
            raise gr.Error("No audio: upload a file or record with the microphone first.")
        notes: list[str] = []
        try:
            seconds = audio.duration(audio_path)
            raw, raw_sr = audio.read(audio_path, max_seconds=MAX_SECONDS, notes=notes)  # decode no more than is used
            if seconds > MAX_SECONDS and not notes:
                notes.append(f"The clip is {seconds:.1f} s long; only the first {MAX_SECONDS:g} s were translated.")
            wave = audio.conform(raw, raw_sr, sample_rate, max_channels=2)
            del raw
            audio.check_usable(wave, sample_rate, MIN_SECONDS)
        except audio.AudioError as e:  # messages are written for the user
            raise gr.Error(f"Cannot use this audio: {e}") from None
        return wave, notes

    def check(self, audio_path: str | None) -> str:
        """What an upload holds, or gr.Error at once if it cannot be translated."""
        sr = self.sample_rate
        wave, notes = self.read(audio_path, sr)
        seconds = len(wave) / sr
        del wave
        give_back_memory()
        for note in notes:
            gr.Warning(note)
        return f"Ready: {seconds:.1f} s of audio. Press **Translate**." + _notes(notes)

    def translate(self, audio_path: str | None, direction: str | None, phase: str = "input",
                  match_level: bool = True, tone: str = "clean", strength: float | None = None,
                  progress=None, decay: bool = False) -> tuple:
        """The one handler behind the button, the examples and the API. Bad input -> gr.Error."""
        if progress is None:  # a gr.Progress is falsy (its len is 0): test for None, not truth
            progress = lambda *a, **k: None  # noqa: E731
        d = self.direction(direction)
        if tone not in TONES or (tone != "clean" and not has_tones(d.target)):
            raise gr.Error(f"Tone {tone!r} is not available for {d.label}; use 'clean'.")
        try:
            check_strength(1.0 if strength is None else strength)
        except ValueError:
            raise gr.Error(f"Strength {strength!r} is out of range; use 1 (one pass) to 2 (two).") from None
        tr = self.translators[d.model_dir]
        if decay and not tr.cfg.decays(d.target):
            raise gr.Error(f"Decay shapes translations into {tr.cfg.decay_into or 'no instrument'}, not {d.label}.")
        progress(0.0, desc="Reading audio")
        wave, notes = self.read(audio_path, tr.spec.sample_rate)
        for note in notes:
            gr.Warning(note)
        try:
            res = tr.translate(wave, d.reverse, phase, match_level, tone=tone, strength=strength, decay=decay,
                               progress=lambda f, stage: progress(0.05 + 0.85 * f, desc=stage.capitalize()))
        except audio.AudioError as e:
            raise gr.Error(f"Cannot use this audio: {e}") from None
        del wave
        progress(0.92, desc="Drawing")
        out = Path(tempfile.mkdtemp(dir=self.out_root))
        _prune(self.out_root, KEEP_OUTPUTS_S)
        try:
            return (*self._write(res, d, Path(audio_path).stem, out), _summary(res, d, notes),
                    self._changes(res, d, out))
        finally:
            del res
            give_back_memory()

    def _write(self, res: Translation, d: weights.Direction, stem: str, out: Path) -> tuple[str, ...]:
        """Write the two wavs and three spectrogram PNGs; return their paths."""
        # Our own 16-bit files: Gradio would rescale float arrays to full scale, losing the level match.
        wav_t, wav_r = out / f"{stem}_{d.value}.wav", out / f"{stem}_{d.round_trip}.wav"
        audio.save(wav_t, res.translated, res.sample_rate)
        audio.save(wav_r, res.reconstructed, res.sample_rate)
        titles = {"input": f"Input ({d.source})", "translated": f"Translated ({d.target})",
                  "reconstructed": f"Reconstructed ({d.source})"}
        spec = self.translators[d.model_dir].spec
        pngs = plots.spectrogram_pngs({k: (t, res.magnitudes[k]) for k, t in titles.items()}, spec, out)
        return (str(wav_t), str(wav_r), *(str(pngs[k]) for k in titles))

    def _changes(self, res: Translation, d: weights.Direction, out: Path) -> tuple[str, pd.DataFrame]:
        """The "what changed" view: the dB difference image and the average spectra."""
        spec = self.translators[d.model_dir].spec
        mags = res.magnitudes
        diff = plots.difference_png(mags["translated"], mags["input"], spec, out / "difference.png",
                                    "Translated − input (dB)")
        curves = {f"input ({d.source})": mags["input"].mean(1), f"translation ({d.target})": mags["translated"].mean(1)}
        trained = self.spectra[d.model_dir].get(d.target)
        if trained is not None:
            curves[f"{d.target}, training average"] = trained
        hz = spec.bin_hz
        frame = pd.DataFrame({"frequency (Hz)": np.tile(hz, len(curves)),
                              "level (dB)": np.concatenate([plots.to_db(c, spec) for c in curves.values()]),
                              "curve": np.repeat(list(curves), len(hz))})
        return str(diff), frame


def _summary(res: Translation, d: weights.Direction, notes: list[str]) -> str:
    seconds = len(res.input) / res.sample_rate
    return (f"**{d.label}** · relative cycle error **{res.cycle_error:.3f}** (0 = the round trip "
            f"gives back the input) · {seconds:.1f} s of audio processed in {res.seconds:.2f} s" + _notes(notes))


def _notes(notes: list[str]) -> str:
    return "".join(f"\n\n⚠️ {n}." for n in notes)


def _prune(root: Path, max_age_s: float) -> None:
    """Drop old per-request folders so a long-running server does not fill its disk."""
    cutoff = time.time() - max_age_s
    for p in root.iterdir():
        try:
            if p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:  # another request pruned it first
            pass


def example_rows(directions: list[weights.Direction], folder: Path) -> list[list[str]]:
    """Each bundled clip with the direction that starts from its instrument (piano_1 -> piano2guitar):
    a clip is named <source>_<anything>."""
    values = [d.value for d in directions]
    rows = []
    for clip in sorted(folder.glob("*.ogg")):
        match = next((d.value for d in directions if clip.stem.startswith(f"{d.source}_")), None)
        if match:
            rows.append([str(clip), match])
    return sorted(rows, key=lambda r: values.index(r[1]))  # the default direction's clips first


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@dataclass
class Channel:
    """One visitor's live session: the translator the microphone event feeds, and the queue the
    whole-take event streams from. Gradio starts a new output stream for each call of a .stream
    handler, so one long-running generator is what keeps that output one continuous stream."""
    stream: LiveStream | None = None
    out: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=512))
    open: bool = True
    sent: int = 0  # pieces sent to the page's player


class Live:
    """The Live tab's three handlers: start (a channel per session), chunk (translate what the
    microphone sent; its reply feeds the page's player) and play (yield the whole take to the
    streamed output as it becomes final), plus stop."""

    def __init__(self, app: App, step_seconds: float, max_seconds: float):
        self.app, self.step, self.max_seconds = app, step_seconds, max_seconds
        self.channels: dict[str, Channel] = {}
        for d in app.directions.values():  # probe each generator's reach now, not in a visitor's first chunk:
            reach(app.translators[d.model_dir], d.reverse)  # one pass, as the Live tab streams

    def start(self, request: gr.Request) -> None:
        self.channels[request.session_hash] = Channel()

    def stop(self, request: gr.Request) -> None:
        if (ch := self.channels.get(request.session_hash)) is not None:
            ch.open = False

    def chunk(self, chunk: tuple[int, np.ndarray] | None, direction: str, tone: str, decay: bool,
              request: gr.Request) -> tuple[str, str]:
        """(status line, the page player's piece), or two no-op updates when the model did not run."""
        d = self.app.direction(direction)
        ch = self.channels.setdefault(request.session_hash, Channel())
        idle = gr.update(), gr.update()
        if chunk is None:
            return idle
        rate, data = chunk
        tone = tone if has_tones(d.target) else "clean"
        tr = self.app.translators[d.model_dir]
        decay = bool(decay) and self.app.decays(direction)  # a box left ticked on another direction
        key = (d.value, tone, rate, decay)
        if ch.stream is None or ch.stream.key != key:
            ch.stream = LiveStream(tr, d.reverse, rate, tone, self.step, key=key, decay=decay)
        try:
            out = ch.stream.feed(data)
        except audio.AudioError:  # a malformed chunk: skip it, keep the stream
            return idle
        if not out.size:  # the page re-renders what it is sent: only when the model has run
            return idle
        if not ch.out.full():
            ch.out.put(out)
        ch.sent += 1
        return ch.stream.status(), live_player.piece(out, tr.spec.sample_rate, ch.sent)

    def play(self, request: gr.Request):
        """Yield each piece of translation as the chunk handler finishes it, until the recording stops."""
        ch = self.channels.setdefault(request.session_hash, Channel())
        sample_rate = self.app.sample_rate
        deadline = time.monotonic() + self.max_seconds + 5
        try:
            while time.monotonic() < deadline:
                try:
                    pieces = [ch.out.get(timeout=0.05)]
                except queue.Empty:
                    if not ch.open:
                        return
                    continue
                while not ch.out.empty():
                    pieces.append(ch.out.get_nowait())
                yield wav_bytes(np.concatenate(pieces), sample_rate)
        finally:
            if self.channels.get(request.session_hash) is ch:
                del self.channels[request.session_hash]
