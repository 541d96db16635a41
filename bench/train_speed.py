"""Seconds per CycleGAN training step (batch 2) for the default and the reference generator,
for the default under torch.compile (train.py --compile), and to write and verify a checkpoint.

    python bench/train_speed.py [--steps 20] [--reference-steps 3] [--no-compile]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cyclegan.config import Config, ModelConfig  # noqa: E402
from cyclegan.models import count_parameters  # noqa: E402
from cyclegan.store import read_tree, save_tree  # noqa: E402
from cyclegan.training import CycleGAN  # noqa: E402


def seconds_per_step(cfg: Config, frames: int, steps: int, warmup: int = 2,
                     compile: bool = False) -> tuple[float, float, int]:
    """(best, median) seconds per step, and parameters per generator.  Best is timeit's
    convention (slower runs are other processes interfering); on a shared machine the median
    can be well above it, so both are printed."""
    model = CycleGAN(cfg, torch.device("cpu"))
    shape = (cfg.train.batch_size, 1, cfg.spec.n_freq, frames)
    a, b = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    if compile:
        model.compile()
        t = time.perf_counter()
        model.step(a, b)
        print(f"  (torch.compile: first step {time.perf_counter() - t:.0f} s, once per run)")
    for _ in range(warmup):  # oneDNN builds its kernels on the first calls
        model.step(a, b)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.step(a, b)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[0], times[len(times) // 2], count_parameters(model.gens.a2b)


def checkpoint_seconds(cfg: Config, repeats: int = 3) -> tuple[float, float, int]:
    """(write, read + verify) seconds for a checkpoint of `cfg` after one step (Adam's moments
    exist then), best of `repeats`, and its size in bytes."""
    model = CycleGAN(cfg, torch.device("cpu"))
    shape = (cfg.train.batch_size, 1, cfg.spec.n_freq, cfg.train.crop_frames)
    model.step(torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1)
    tree = {**model.state_dict(), "ranks": [model.rank_state({})]}
    writes, reads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.safetensors"
        for _ in range(repeats):
            t = time.perf_counter()
            save_tree(path, tree)
            writes.append(time.perf_counter() - t)
            t = time.perf_counter()
            read_tree(path)
            reads.append(time.perf_counter() - t)
        size = path.stat().st_size
    return min(writes), min(reads), size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reference-steps", type=int, default=3)
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile row")
    args = p.parse_args()
    cfg = Config()
    ref = replace(cfg, model=ModelConfig(arch="resnet", ngf=64, n_blocks=9, upsample="transpose", ndf=64, skip=False))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {cfg.train.batch_size}")
    rows = [("default", cfg, cfg.train.crop_frames, args.steps, False), ("default", cfg, 256, args.steps, False),
            ("reference 64f/9b", ref, 256, args.reference_steps, False)]
    if args.compile:
        rows.append(("default, compiled", cfg, cfg.train.crop_frames, args.steps, True))
    results = {}
    for name, c, frames, n, compiled in rows:
        s, median, params = seconds_per_step(c, frames, n, compile=compiled)
        results[(name, frames)] = s
        print(f"{name:18s} {frames:4d} frames  {params / 1e6:6.2f} M params/generator  "
              f"best {s:6.3f} s/step ({1 / s:5.2f} it/s), median {median:6.3f}")
    ratio = results[("reference 64f/9b", 256)] / results[("default", 256)]
    print(f"speed-up of the default over the reference on 256x256 crops: {ratio:.1f}x")
    write, read, size = checkpoint_seconds(cfg)
    print(f"checkpoint of the default model: {size / 1e6:.1f} MB, write (fsync'ed) {write:.3f} s, "
          f"read + verify its checksum {read:.3f} s")


if __name__ == "__main__":
    main()
