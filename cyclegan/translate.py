"""Translate recordings with an exported model; also the command line.

    python -m cyclegan.translate clip.wav --direction piano2guitar [--out DIR] [--reconstruct] [--backend onnx]
"""
from __future__ import annotations

import argparse
import contextvars
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from . import audio, onnx_backend, weights
from .config import check_strength
from .models import reach_bound
from .tone import TONE_TARGETS, TONES, apply_tone, has_tones

MIN_SECONDS = 0.25
# progress(share of the work done, stage now running): stages "translating", "reconstructing"
Progress = Callable[[float, str], None]
BACKENDS = ("torch", "onnx")
SPECTROGRAMS = ("input", "translated", "reconstructed")


@dataclass
class Translation:
    sample_rate: int
    input: np.ndarray
    translated: np.ndarray
    reconstructed: np.ndarray
    magnitudes: dict[str, np.ndarray]  # "input", "translated", "reconstructed": (n_freq, frames)
    cycle_error: float  # NaN when the reconstruction was not asked for
    seconds: float  # processing time


@dataclass(frozen=True)
class Frontend:
    """A backend's spectrogram maths: torch's (audio.py) or numpy's (onnx_backend.py)."""
    analyse: Callable[[np.ndarray, Any], tuple[Any, Any]]  # normalised wave -> (model input, phase)
    synthesise: Callable[[Any, Any, Any, int], np.ndarray]  # model-scale magnitude, phase -> wave
    from_model: Callable[[Any, Any], Any]  # model scale -> linear magnitude
    cat: Callable[[list], Any]  # (n_freq, frames) pieces joined along time


FRONTENDS = {"torch": Frontend(partial(audio.analyse, peak_normalise=False), audio.synthesise, audio.from_model,
                               partial(torch.cat, dim=1)),
             "onnx": Frontend(onnx_backend.analyse, onnx_backend.synthesise, onnx_backend.from_model,
                              partial(np.concatenate, axis=1))}


class Translator:
    """One exported pair, loaded once; translates audio of any length with bounded memory.

    A clip is processed end to end (STFT -> generators -> ISTFT) in segments of
    `segment_frames`, each read with `margin_frames` of context on both sides (at least what
    `margin_frames()` needs), so the kept middles join exactly and memory does not grow with
    the clip (beyond the audio, and the spectrograms when they are asked for).

    workers > 1 translates that many segments at a time on threads: one by one's result to float rounding.

    backend="onnx" runs the exported graphs (<model_dir>/onnx/) with onnxruntime on the CPU, with
    a numpy STFT: the same audio to float32 rounding (docs/onnx.md). "torch" is the reference.
    """

    def __init__(self, model_dir: Path, device: str | None = None, segment_frames: int = 2048,
                 margin_frames: int = 128, backend: str = "torch", workers: int = 1):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        self.model_dir, self.backend = Path(model_dir), backend
        if backend == "torch":
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.cfg, self.gens = weights.load(model_dir, self.device)
        else:
            if device not in (None, "cpu"):
                raise ValueError(f"the onnx backend runs on the CPU, not on {device!r}")
            self.device = torch.device("cpu")
            self.cfg = weights.read_config(model_dir)
            self.gens = onnx_backend.OnnxGenerators(self.model_dir, threads=torch.get_num_threads())
        self.spec, self.front = self.cfg.spec, FRONTENDS[backend]
        self.margin, self.reach, self.grid = margin_frames, reach_bound(self.cfg.model), 2 ** self.cfg.model.n_down
        self.edge = -(-(self.spec.n_fft // 2) // self.spec.hop_length)  # frames the STFT's window spans
        self.segment, self.workers = segment_frames, max(1, workers)

    def margin_frames(self, strength: float = 1.0, decay: bool = False) -> int:
        """Context either side of a segment: past the reach of every generator on the way there and
        back, of the decay and of the STFT window, on the encoder's stride grid (segments join exactly)."""
        c = self.cfg
        back = audio.decay_lookback(self.spec, c.decay_db_s, c.decay_max_db, c.decay_min_hz) if decay else 0
        need = max(self.margin, 2 * math.ceil(strength) * self.reach + back + self.edge)
        return -(-need // self.grid) * self.grid

    def generator(self, reverse: bool) -> tuple[Any, Any]:
        """(forward, backward) generators for a direction: torch modules, or onnx graphs."""
        return (self.gens.b2a, self.gens.a2b) if reverse else (self.gens.a2b, self.gens.b2a)

    def run(self, net: Any, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Apply a generator to a (n_freq, frames) spectrogram; a torch tensor gives a torch tensor."""
        if self.backend == "onnx":
            y = net(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
            return torch.from_numpy(y) if isinstance(x, torch.Tensor) else y
        with torch.inference_mode():
            return net(x[None, None].to(self.device))[0, 0].cpu()

    def target(self, reverse: bool) -> str:
        return self.cfg.name_a if reverse else self.cfg.name_b

    def translate(self, wave: np.ndarray, reverse: bool = False, phase: str = "input", match_level: bool = True,
                  progress: Progress | None = None, spectrograms: bool = True, tone: str = "clean",
                  reconstruct: bool = True, strength: float | None = None, decay: bool = False) -> Translation:
        """`wave`: mono float at the model's rate (see `audio.load` / `audio.conform`).

        spectrograms=False leaves `magnitudes` empty (the CLI), so memory stays bounded.
        tone: the guitar tone of a translation into guitar (`tone.TONES`); the spectrograms
        and the reconstruction are those of the clean translation the tone starts from.
        reconstruct=False skips the way back (half the work): no `reconstructed`, NaN `cycle_error`, same translation.
        strength in [1, 2]: 1 runs each generator once, 2 again on its own output (more target, less
        input kept), mixed on the log scale between; None: the model's own (`Config.strength`).
        decay: a struck string's decay on a translation into `Config.decay_into` (audio.decay)."""
        start = time.perf_counter()
        strength = self.cfg.strength if strength is None else strength
        self._check(wave, reverse, phase, tone, strength, decay)
        normalised, _ = audio.normalise(wave)  # once for the clip: every segment at the same gain
        hop, n, fe = self.spec.hop_length, len(wave), self.front
        seg, margin = self.segment * hop, self.margin_frames(strength, decay) * hop  # multiples of the hop: one grid
        starts = range(0, n, seg)
        names = SPECTROGRAMS if reconstruct else SPECTROGRAMS[:2]
        outs = [np.zeros(n, np.float32) for _ in names[1:]]
        kept: dict[str, list[Any]] = {k: [] for k in names}
        sums = np.zeros(2)  # the report's cycle error (metrics.relative_cycle_error), summed segment-wise
        plan = [(s, max(0, s - margin), min(n, s + seg + margin), min(n, s + seg)) for s in starts]

        def one(i: int, step: Progress | None) -> tuple[list[Any], list[np.ndarray]]:
            s, lo, hi, end = plan[i]
            frames = slice((s - lo) // hop, (end - lo) // hop if end < n else None)  # frames centred in [s, end)
            return self._pass(normalised[lo:hi], reverse, frames, phase == "input", step, reconstruct, strength, decay)

        for (s, lo, hi, end), (specs, waves) in zip(plan, self._map(one, len(plan), progress)):
            for out, w in zip(outs, waves):
                out[s:end] = w[s - lo:end - lo]
            if reconstruct:
                x, rec = (fe.from_model(v, self.spec) for v in (specs[0], specs[2]))
                sums += [float(abs(rec - x).sum()), float(abs(x).sum())]
            if spectrograms or phase == "griffinlim":
                for k, v in zip(kept, specs):
                    kept[k].append(v)
        whole = {k: fe.cat(v) for k, v in kept.items() if v}
        if phase == "griffinlim":  # needs the whole magnitude at once
            outs = [audio.recover_phase(np.asarray(fe.from_model(whole[k], self.spec)), self.spec, n).astype(np.float32)
                    for k in names[1:]]
        outs[0] = apply_tone(outs[0], self.spec.sample_rate, tone)
        if match_level:
            outs = [audio.match_level(o, wave) for o in outs]
        mags = {k: np.asarray(fe.from_model(v, self.spec)) for k, v in whole.items()} if spectrograms else {}
        err = float(sums[0] / max(sums[1], 1e-12)) if reconstruct else float("nan")
        rec_wave = outs[1] if reconstruct else np.zeros(0, np.float32)
        return Translation(self.spec.sample_rate, wave, outs[0], rec_wave, mags, err, time.perf_counter() - start)

    def _map(self, one: Callable[[int, Progress | None], Any], count: int,
             progress: Progress | None) -> Iterator[Any]:
        """Segments one by one (bounded memory), or `workers` at a time on threads: torch and
        onnxruntime release the GIL, so one request can use every core."""
        if self.workers == 1 or count == 1:
            for i in range(count):
                yield one(i, (lambda f, stage, i=i: progress((i + f) / count, stage)) if progress else None)
            return
        done, lock, last = [0.0] * count, threading.Lock(), [-1.0]

        def step(i: int, f: float, stage: str) -> None:  # the share over all segments, never going back
            with lock:
                done[i] = max(done[i], f)
                share = sum(done) / count
                if share > last[0]:
                    last[0] = share
                    progress(share, stage)

        with ThreadPoolExecutor(self.workers) as pool:  # each task in the caller's context (gr.Progress needs it)
            tasks = [pool.submit(contextvars.copy_context().run, one, i, partial(step, i) if progress else None)
                     for i in range(count)]
            for task in tasks:
                yield task.result()

    def _check(self, wave: np.ndarray, reverse: bool, phase: str, tone: str, strength: float, decay: bool) -> None:
        audio.check_usable(wave, self.spec.sample_rate, MIN_SECONDS)
        check_strength(strength)
        if phase not in ("input", "griffinlim"):
            raise ValueError(f"unknown phase method {phase!r}: use 'input' or 'griffinlim'")
        if tone != "clean" and not has_tones(self.target(reverse)):
            raise ValueError(f"a tone applies to translations into {', '.join(TONE_TARGETS)}, "
                             f"not into {self.target(reverse)}")
        if decay:
            self.cfg.check_decay(self.target(reverse))

    def _pass(self, piece: np.ndarray, reverse: bool, frames: slice, synthesise: bool,
              progress: Progress | None, reconstruct: bool, strength: float,
              decay: bool = False) -> tuple[list[Any], list[np.ndarray]]:
        """One segment with its margins: ([input, translated(, reconstructed)] cut to `frames`,
        [translated(, reconstructed)] waveforms with the input phase, margins included)."""
        fwd, back = self.generator(reverse)
        x, angle = self.front.analyse(piece, self.spec)
        say = progress or (lambda share, stage: None)
        say(0.0, "translating")
        outs = [self.apply(fwd, x, strength, decay)]
        if reconstruct:
            say(0.5, "reconstructing")
            outs.append(self.apply(back, outs[0], strength))
        say(1.0, "reconstructing" if reconstruct else "translating")
        waves = [self.front.synthesise(y, angle, self.spec, len(piece)) for y in outs] if synthesise else []
        return [v[:, frames] for v in (x, *outs)], waves

    def apply(self, net: Any, x: Any, strength: float, decay: bool = False) -> Any:
        """The generator, (strength - 1) of a second pass, the bass cap, the decay where asked."""
        y, c = self.run(net, x), self.cfg
        y = y if strength == 1 else y + (strength - 1) * (self.run(net, y) - y)
        y = audio.cap_bass(y, x, self.spec, c.bass_cap_hz, c.bass_cap_db) if c.bass_cap_hz else y
        return audio.decay(y, x, self.spec, c.decay_db_s, c.decay_max_db, c.decay_min_hz) if decay else y


def find_direction(value: str, root: Path) -> weights.Direction:
    found = weights.directions(root)
    if match := next((d for d in found if d.value == value), None):
        return match
    names = ", ".join(d.value for d in found) or "none"
    raise SystemExit(f"error: no model for direction {value!r} under {root} (available: {names}); "
                     "train one with `python train.py --export NAME`")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.translate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", type=Path, help="audio files or folders (every audio file below a folder)")
    ap.add_argument("--direction", required=True, help="e.g. piano2guitar or guitar2piano (required)")
    ap.add_argument("--out", type=Path, default=Path("translated"), help="output folder (default: translated/)")
    ap.add_argument("--weights", type=Path, default=weights.DEFAULT_ROOT,
                    help="weights/ or one model folder (default: the repository's weights/)")
    ap.add_argument("--phase", choices=["input", "griffinlim"], default="input",
                    help="phase of the output: the input's, or recovered by Griffin-Lim (default: input)")
    ap.add_argument("--reconstruct", action="store_true", help="also write the cycle reconstruction (default: off)")
    ap.add_argument("--no-level-match", action="store_true", help="keep the model's output level, not the input's")
    ap.add_argument("--tone", choices=TONES, default="clean", help="guitar tone of a translation into guitar: "
                    "clean, or driven through an amp and cabinet chain (default: clean)")
    ap.add_argument("--strength", type=float, help="1 to 2: 2 runs the generator again on its output, "
                    "less of the input kept (default: the model's, in its config.json)")
    ap.add_argument("--decay", action="store_true", help="a struck string's decay on a translation into the "
                    "model's decay_into, piano for the shipped pair: held notes fade (docs/evaluation.md)")
    ap.add_argument("--backend", choices=BACKENDS, default="torch", help="torch, or the exported ONNX graphs on "
                    "onnxruntime (same audio; see docs/onnx.md) (default: torch)")
    args = ap.parse_args(argv)
    try:
        check_strength(1.0 if args.strength is None else args.strength)  # before any file is written
    except ValueError as e:
        raise SystemExit(f"error: --{e}") from None
    torch.set_num_threads(os.cpu_count() or 1)  # the onnx backend takes the same thread count
    direction = find_direction(args.direction, args.weights)
    if args.tone != "clean" and not has_tones(direction.target):
        raise SystemExit(f"error: --tone applies to translations into {', '.join(TONE_TARGETS)}, "
                         f"not {direction.value}")
    try:
        tr = Translator(direction.model_dir, backend=args.backend)
    except onnx_backend.BackendUnavailable as e:
        raise SystemExit(f"error: {e}") from None
    if args.decay and not tr.cfg.decays(direction.target):
        raise SystemExit(f"error: --decay shapes translations into {tr.cfg.decay_into or 'none'}, not {direction.value}")
    try:  # files as given; folders expanded exactly as training reads a domain folder
        files, failed = [f for p in args.inputs for f in (audio.list_audio(p) if p.is_dir() else [p])], 0
    except audio.AudioError as e:
        raise SystemExit(f"error: {e}") from None
    for path in tqdm(files, desc=direction.label, disable=len(files) < 2):
        try:
            wave = audio.load(path, tr.spec.sample_rate, max_channels=2)
            res = tr.translate(wave, direction.reverse, args.phase, not args.no_level_match, spectrograms=False,
                               tone=args.tone, reconstruct=args.reconstruct, strength=args.strength, decay=args.decay)
        except audio.AudioError as e:
            tqdm.write(f"skipped {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        outs = {direction.value: res.translated}
        if args.reconstruct:
            outs[direction.round_trip] = res.reconstructed
        for suffix, wave_out in outs.items():
            dest = args.out / f"{path.stem}_{suffix}.wav"
            audio.save(dest, wave_out, res.sample_rate)
            tqdm.write(f"wrote {dest}")
    return 1 if failed and failed == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
