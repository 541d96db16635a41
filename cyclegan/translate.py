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
from .metrics import relative_cycle_error

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
    """One exported pair, loaded once; translates audio of any length in cross-faded chunks.

    Chunks bound the memory to one chunk batch whatever the clip's length, and match the
    short crops the model was trained on; the linear cross-fades hide the seams.
    """

    def __init__(self, model_dir: Path, device: str | None = None, chunk_frames: int = 512,
                 overlap: int = 64, batch: int = 4):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cfg, self.gens = weights.load(model_dir, self.device)
        self.spec = self.cfg.spec
        self.chunk, self.overlap, self.batch = chunk_frames, overlap, batch

    def generator(self, reverse: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(forward, backward) generators for a direction."""
        return (self.gens.b2a, self.gens.a2b) if reverse else (self.gens.a2b, self.gens.b2a)

    @torch.inference_mode()
    def run(self, net: torch.nn.Module, x: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Apply a generator to a (n_freq, frames) spectrogram, chunk by chunk."""
        frames = x.shape[1]
        if frames <= self.chunk:
            return net(x[None, None].to(self.device))[0, 0].cpu()
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

    def translate(self, wave: np.ndarray, reverse: bool = False, phase: str = "input",
                  match_level: bool = True, progress: Progress | None = None) -> Translation:
        """`wave`: mono float at the model's rate (see `audio.load` / `audio.conform`)."""
        start = time.perf_counter()
        audio.check_usable(wave, self.spec.sample_rate, MIN_SECONDS)
        fwd, back = self.generator(reverse)
        x, angle = audio.analyse(wave, self.spec)
        step = (lambda f: progress(0.5 * f)) if progress else None
        fake = self.run(fwd, x, step)
        rec = self.run(back, fake, (lambda f: progress(0.5 + 0.5 * f)) if progress else None)
        outs = [self._synthesise(y, angle, len(wave), phase) for y in (fake, rec)]
        if match_level:
            outs = [audio.match_level(o, wave) for o in outs]
        mags = {k: audio.from_model(v, self.spec).numpy() for k, v in (("input", x), ("translated", fake),
                                                                        ("reconstructed", rec))}
        err = relative_cycle_error(mags["input"], mags["reconstructed"])
        return Translation(self.spec.sample_rate, wave, outs[0], outs[1], mags, err, time.perf_counter() - start)

    def _synthesise(self, x: torch.Tensor, angle: torch.Tensor, length: int, phase: str) -> np.ndarray:
        if phase == "input":
            return audio.synthesise(x, angle, self.spec, length)
        if phase == "griffinlim":
            return audio.griffin_lim(x, self.spec, length).astype(np.float32)
        raise ValueError(f"unknown phase method {phase!r}: use 'input' or 'griffinlim'")


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
            res = tr.translate(wave, direction.reverse, args.phase, not args.no_level_match)
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
