"""Translate recordings with an exported model; also the command line.

    python -m cyclegan.translate clip.wav --direction piano2guitar [--out DIR] [--reconstruct]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from . import audio, weights
from .data import DataError, list_audio

MIN_SECONDS = 0.25
Progress = Callable[[float], None]


@dataclass
class Translation:
    sample_rate: int
    input: np.ndarray
    translated: np.ndarray
    reconstructed: np.ndarray
    magnitudes: dict[str, np.ndarray]  # "input", "translated", "reconstructed": (n_freq, frames)
    cycle_error: float
    seconds: float  # processing time


def _fade_weights(n: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    w = torch.ones(n)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
    if not first:
        w[:overlap] = ramp
    if not last:
        w[n - overlap:] = ramp.flip(0)
    return w


class Translator:
    """One exported pair, loaded once; translates audio of any length with bounded memory.

    A clip is processed end to end (STFT -> generators -> ISTFT) in segments of
    `segment_frames`, each read with `margin_frames` of context on both sides; the generator
    reaches only ~40 frames, so the kept middles join exactly and memory does not grow with
    the clip (beyond the audio, and the spectrograms when they are asked for).  `run` can
    also split a spectrogram into cross-faded chunks (`chunk_frames`), e.g. for a small GPU.
    """

    def __init__(self, model_dir: Path, device: str | None = None, chunk_frames: int | None = None,
                 overlap: int = 64, batch: int = 4, segment_frames: int = 2048, margin_frames: int = 128):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cfg, self.gens = weights.load(model_dir, self.device)
        self.spec = self.cfg.spec
        self.segment, self.margin = segment_frames, margin_frames
        # default: a whole segment in one generator call (segments already bound the memory,
        # and every chunk overlap is work done twice)
        self.chunk = chunk_frames or segment_frames + 2 * margin_frames
        self.overlap, self.batch = overlap, batch

    def generator(self, reverse: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(forward, backward) generators for a direction."""
        return (self.gens.b2a, self.gens.a2b) if reverse else (self.gens.a2b, self.gens.b2a)

    @torch.inference_mode()
    def run(self, net: torch.nn.Module, x: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Apply a generator to a (n_freq, frames) spectrogram, chunk by chunk."""
        frames = x.shape[1]
        if frames <= self.chunk:
            y = net(x[None, None].to(self.device))[0, 0].cpu()
            if progress:
                progress(1.0)
            return y
        hop = self.chunk - self.overlap
        starts = list(range(0, frames - self.chunk, hop)) + [frames - self.chunk]  # the last chunk ends at the end
        out, total = torch.zeros_like(x), torch.zeros(frames)
        for i in range(0, len(starts), self.batch):
            group = starts[i:i + self.batch]
            chunks = torch.stack([x[:, s:s + self.chunk] for s in group])[:, None].to(self.device)
            ys = net(chunks)[:, 0].cpu()
            for s, y in zip(group, ys):
                w = _fade_weights(self.chunk, self.overlap, s == 0, s == starts[-1])
                out[:, s:s + self.chunk] += y * w
                total[s:s + self.chunk] += w
            if progress:
                progress(min(1.0, (i + len(group)) / len(starts)))
        return out / total

    def translate(self, wave: np.ndarray, reverse: bool = False, phase: str = "input", match_level: bool = True,
                  progress: Progress | None = None, spectrograms: bool = True) -> Translation:
        """`wave`: mono float at the model's rate (see `audio.load` / `audio.conform`).

        spectrograms=False leaves `magnitudes` empty (the CLI), so memory stays bounded."""
        start = time.perf_counter()
        audio.check_usable(wave, self.spec.sample_rate, MIN_SECONDS)
        if phase not in ("input", "griffinlim"):
            raise ValueError(f"unknown phase method {phase!r}: use 'input' or 'griffinlim'")
        normalised, _ = audio.normalise(wave)  # once for the clip: every segment at the same gain
        hop, n = self.spec.hop_length, len(wave)
        seg, margin = self.segment * hop, self.margin * hop  # multiples of the hop: one frame grid
        starts = range(0, n, seg)
        outs = [np.zeros(n, np.float32), np.zeros(n, np.float32)]
        kept: dict[str, list[torch.Tensor]] = {k: [] for k in ("input", "translated", "reconstructed")}
        sums = np.zeros(2)  # the report's cycle error (metrics.relative_cycle_error), summed segment-wise
        for i, s in enumerate(starts):
            lo, hi, end = max(0, s - margin), min(n, s + seg + margin), min(n, s + seg)
            frames = slice((s - lo) // hop, (end - lo) // hop if end < n else None)  # frames centred in [s, end)
            step = (lambda f, i=i: progress((i + f) / len(starts))) if progress else None
            specs, waves = self._pass(normalised[lo:hi], reverse, frames, phase == "input", step)
            for out, w in zip(outs, waves):
                out[s:end] = w[s - lo:end - lo]
            x, rec = (audio.from_model(v, self.spec) for v in (specs[0], specs[2]))
            sums += [float((rec - x).abs().sum()), float(x.abs().sum())]
            if spectrograms or phase == "griffinlim":
                for k, v in zip(kept, specs):
                    kept[k].append(v)
        whole = {k: torch.cat(v, 1) for k, v in kept.items() if v}
        if phase == "griffinlim":  # needs the whole magnitude at once
            outs = [audio.griffin_lim(whole[k], self.spec, n).astype(np.float32) for k in ("translated", "reconstructed")]
        if match_level:
            outs = [audio.match_level(o, wave) for o in outs]
        mags = {k: audio.from_model(v, self.spec).numpy() for k, v in whole.items()} if spectrograms else {}
        err = float(sums[0] / max(sums[1], 1e-12))
        return Translation(self.spec.sample_rate, wave, outs[0], outs[1], mags, err, time.perf_counter() - start)

    def _pass(self, piece: np.ndarray, reverse: bool, frames: slice, synthesise: bool,
              progress: Progress | None) -> tuple[list[torch.Tensor], list[np.ndarray]]:
        """One segment with its margins: ([input, translated, reconstructed] cut to `frames`,
        [translated, reconstructed] waveforms with the input phase, margins included)."""
        fwd, back = self.generator(reverse)
        x, angle = audio.analyse(piece, self.spec, peak_normalise=False)
        fake = self.run(fwd, x, progress and (lambda f: progress(0.5 * f)))
        rec = self.run(back, fake, progress and (lambda f: progress(0.5 + 0.5 * f)))
        waves = [audio.synthesise(y, angle, self.spec, len(piece)) for y in (fake, rec)] if synthesise else []
        return [v[:, frames] for v in (x, fake, rec)], waves


def find_direction(value: str, root: Path) -> weights.Direction:
    found = weights.directions(root)
    for d in found:
        if d.value == value:
            return d
    names = ", ".join(d.value for d in found) or "none"
    raise SystemExit(f"error: no model for direction {value!r} under {root} (available: {names}); "
                     "train one with `python train.py --export NAME`")


def _inputs(items: list[Path]) -> list[Path]:
    """Files as given; folders expanded exactly as training reads a domain folder."""
    try:
        return [f for p in items for f in (list_audio(p) if p.is_dir() else [p])]
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", type=Path, help="audio files or folders")
    ap.add_argument("--direction", required=True, help="e.g. piano2guitar or guitar2piano")
    ap.add_argument("--out", type=Path, default=Path("translated"), help="output folder")
    ap.add_argument("--weights", type=Path, default=weights.DEFAULT_ROOT, help="weights/ or one model folder")
    ap.add_argument("--phase", choices=["input", "griffinlim"], default="input")
    ap.add_argument("--reconstruct", action="store_true", help="also write the cycle reconstruction")
    ap.add_argument("--no-level-match", action="store_true", help="keep the model's output level")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    direction = find_direction(args.direction, args.weights)
    tr = Translator(direction.model_dir)
    files, failed = _inputs(args.inputs), 0
    for path in tqdm(files, desc=direction.label, disable=len(files) < 2):
        try:
            wave = audio.load(path, tr.spec.sample_rate, max_channels=2)
            res = tr.translate(wave, direction.reverse, args.phase, not args.no_level_match, spectrograms=False)
        except audio.AudioError as e:
            tqdm.write(f"skipped {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        outs = {direction.value: res.translated}
        if args.reconstruct:
            back = direction.value.split("2")[0]
            outs[f"{direction.value}2{back}"] = res.reconstructed
        for suffix, wave_out in outs.items():
            dest = args.out / f"{path.stem}_{suffix}.wav"
            audio.save(dest, wave_out, res.sample_rate)
            tqdm.write(f"wrote {dest}")
    return 1 if failed and failed == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
