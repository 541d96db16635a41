"""Real-time factor and peak memory of translate + reconstruct on CPU.

    python bench/infer_speed.py [--weights weights/piano_guitar] [--seconds 10 60]

RTF = processing seconds / audio seconds (lower is faster).  Peak memory is the growth of the
peak RSS during the call (each row in a fresh process), next to the size of the audio itself:
with the three spectrograms the app shows, and audio only, as the command line translates.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cyclegan import audio, weights  # noqa: E402
from cyclegan.translate import Translator  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clip(seconds: float, sr: int) -> np.ndarray:
    """The bundled examples, looped to the asked length."""
    waves = [audio.load(p, sr) for p in sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ogg"))]
    loop = np.concatenate(waves)
    return np.resize(loop, int(seconds * sr)).astype(np.float32)


def measure(model_dir: Path, seconds: float, spectrograms: bool, repeats: int) -> str:
    """One row, in a fresh process so that the peak RSS is this call's alone."""
    tr = Translator(model_dir, device="cpu")
    sr = tr.spec.sample_rate
    tr.translate(clip(2, sr))  # warm-up: oneDNN builds its kernels on the first call
    wave = clip(seconds, sr)
    before = peak_rss_mb()
    best = min(tr.translate(wave, spectrograms=spectrograms).seconds for _ in range(repeats))
    what = "with spectrograms (app)" if spectrograms else "audio only (CLI)      "
    return (f"{seconds:5.0f} s clip, {what}: {best:6.2f} s  RTF {best / seconds:.4f}  "
            f"peak RSS +{peak_rss_mb() - before:4.0f} MB (the audio itself is {wave.nbytes / 2**20:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="a model folder (default: the first under weights/)")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 300])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model_dir = args.weights or next(iter(weights.find_models()), None)
    if model_dir is None:
        sys.exit("no model under weights/; pass --weights DIR")
    print(f"{model_dir}: torch {torch.__version__}, {torch.get_num_threads()} threads")
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        for seconds in sorted(args.seconds):
            for spectrograms in (True, False):
                print(pool.apply(measure, (model_dir, seconds, spectrograms, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
