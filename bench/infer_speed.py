"""Translation speed and peak memory on CPU, torch and onnx side by side, in one run.

    python bench/infer_speed.py [--weights weights/piano_guitar] [--seconds 10 60] [--repeats 3]

1. Where the time of one 60 s clip goes, stage by stage (decode, resample, STFT, generator, ISTFT, write).
2. Translator.translate: the app's call (spectrograms and reconstruction) and the CLI's (audio only,
   no reconstruction); RTF = seconds / audio seconds; the peak RSS of a fresh process that loads
   the model and translates (imports included).
3. The CLI end to end, as a user runs it: four 60 s files (44.1 kHz stereo wav: decode and resample
   included), start-up removed by subtracting a run on one 2 s file; start-up to first output for
   one 4 s example; the command's peak RSS.
Without graphs in <weights>/onnx/ the onnx rows use a fresh export into a temporary copy.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cyclegan import audio, export_onnx, onnx_backend, weights  # noqa: E402
from cyclegan.translate import BACKENDS, Translator  # noqa: E402

CLI_RATE = 44_100


# The CLI with its own peak RSS printed at exit: VmHWM belongs to this process image alone (ru_maxrss
# would carry over the peak of the parent that forked it).
CLI_WITH_PEAK = ("import atexit, runpy, sys; from pathlib import Path; "
                 "atexit.register(lambda: print('VmHWM', Path('/proc/self/status').read_text()"
                 ".split('VmHWM:')[1].split()[0], file=sys.stderr)); "
                 "runpy.run_module('cyclegan.translate', run_name='__main__', alter_sys=True)")


def peak_rss_mb() -> float:
    """The peak resident memory of this process image (Linux)."""
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


def clip(seconds: float, sr: int) -> np.ndarray:
    """The bundled examples, looped to the asked length."""
    loop = np.concatenate([audio.load(p, sr) for p in sorted((ROOT / "examples").glob("*.ogg"))])
    return np.resize(loop, int(seconds * sr)).astype(np.float32)


def best(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def stages(model_dir: Path, backend: str, wav: Path, repeats: int) -> dict[str, float]:
    """Seconds per stage of the CLI's path for one file (best of `repeats` each)."""
    tr = Translator(model_dir, "cpu", backend=backend)
    sr, fe, hop = tr.spec.sample_rate, tr.front, tr.spec.hop_length
    raw, rate = audio.read(wav)
    wave = audio.conform(raw, rate, sr)
    tr.translate(wave[:2 * sr], spectrograms=False, reconstruct=False)  # warm-up
    x, phase = fe.analyse(wave, tr.spec)
    seg, margin = tr.segment, tr.margin_frames()
    pieces = [x[:, max(0, s - margin):s + seg + margin] for s in range(0, x.shape[1], seg)]
    y = tr.run(tr.gens.a2b, x)
    return {"decode": best(lambda: audio.read(wav), repeats),
            "resample": best(lambda: audio.conform(raw, rate, sr), repeats),
            "STFT": best(lambda: fe.analyse(wave, tr.spec), repeats),
            "generator": best(lambda: [tr.run(tr.gens.a2b, p) for p in pieces], repeats),
            "ISTFT": best(lambda: fe.synthesise(y, phase, tr.spec, len(wave)), repeats),
            "level+write": best(lambda: audio.save(Path(tempfile.gettempdir()) / "bench_out.wav",
                                                   audio.match_level(wave, wave), sr), repeats),
            "translate": best(lambda: tr.translate(wave, spectrograms=False, reconstruct=False), repeats)}


def measure(model_dir: Path, backend: str, seconds: float, app: bool, repeats: int) -> str:
    """One cell, in a fresh process so that the peak RSS is this call's alone."""
    torch.set_num_threads(os.cpu_count() or 1)
    tr = Translator(model_dir, "cpu", backend=backend)
    tr.translate(clip(2, tr.spec.sample_rate))  # warm-up: kernels and sessions build on the first call
    wave = clip(seconds, tr.spec.sample_rate)
    took = min(tr.translate(wave, spectrograms=app, reconstruct=app).seconds for _ in range(repeats))
    return f"{took:6.2f} s  RTF {took / seconds:.4f}  {peak_rss_mb():5.0f} MB"


def run_cli(model_dir: Path, backend: str, inputs: list[Path], out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one CLI run."""
    cmd = [sys.executable, "-c", CLI_WITH_PEAK, *map(str, inputs), "--direction",
           weights.pair_directions(weights.read_config(model_dir), model_dir)[0].value,
           "--weights", str(model_dir), "--out", str(out), "--backend", backend]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0 or "VmHWM" not in done.stderr:
        sys.exit(f"the CLI failed: {done.stderr[-500:]}")
    return took, int(done.stderr.split("VmHWM")[-1].split()[0]) / 1024


def cli_rows(model_dir: Path, repeats: int, tmp: Path) -> dict[str, list[str]]:
    files = []
    for i in range(4):  # four different 60 s files: the loop starts elsewhere in each
        wave = np.roll(clip(60, CLI_RATE), i * 3 * CLI_RATE)
        files.append(tmp / f"clip{i}.wav")
        audio.save(files[-1], np.stack([wave, 0.8 * wave], 1), CLI_RATE)
    short = tmp / "short.wav"
    audio.save(short, np.stack([clip(2, CLI_RATE)] * 2, 1), CLI_RATE)
    rows: dict[str, list[str]] = {"CLI 4 x 60 s, start-up removed": [], "start-up to output, one 4 s file": [],
                                  "CLI peak RSS (4 x 60 s)": []}
    for backend in BACKENDS:
        long = [run_cli(model_dir, backend, files, tmp / "out") for _ in range(repeats)]
        base = min(run_cli(model_dir, backend, [short], tmp / "out")[0] for _ in range(repeats))
        first = min(run_cli(model_dir, backend, [ROOT / "examples" / "piano_1.ogg"], tmp / "out")[0]
                    for _ in range(repeats))
        work = min(t for t, _ in long) - base
        rows["CLI 4 x 60 s, start-up removed"].append(f"{work:6.2f} s  RTF {work / 240:.4f}")
        rows["start-up to output, one 4 s file"].append(f"{first:6.2f} s")
        rows["CLI peak RSS (4 x 60 s)"].append(f"{max(m for _, m in long):6.0f} MB")
    return rows


def with_graphs(model_dir: Path, tmp: Path) -> Path:
    """The model folder itself if its graphs are current, else a copy with freshly exported ones."""
    try:
        onnx_backend.check_graphs(model_dir)
        return model_dir
    except onnx_backend.BackendUnavailable:
        copy = tmp / model_dir.name
        shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns(onnx_backend.ONNX_DIR))
        print(f"(no current graphs in {model_dir}/onnx: exporting into a temporary copy)", flush=True)
        export_onnx.export(copy)
        return copy


def table(rows: dict[str, list[str]]) -> None:
    print(f"{'':44s} {'torch':>28s}   {'onnx':>28s}")
    for name, cells in rows.items():
        print(f"{name:44s} {cells[0]:>28s}   {cells[1]:>28s}", flush=True)
    print(f"(load average now {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="a model folder (default: the first under weights/)")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model_dir = args.weights or next(iter(weights.find_models()), None)
    if model_dir is None:
        sys.exit("no model under weights/; pass --weights DIR")
    import onnxruntime

    print(f"{model_dir}: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{os.cpu_count()} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = with_graphs(Path(model_dir), Path(tmp))
        wav = Path(tmp) / "stage.wav"
        audio.save(wav, np.stack([clip(60, CLI_RATE)] * 2, 1), CLI_RATE)
        pool = multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1)
        with pool:
            split = [pool.apply(stages, (model_dir, b, wav, args.repeats)) for b in BACKENDS]
            print("\n1. one 60 s file (44.1 kHz stereo wav), seconds per stage")
            table({k: [f"{s[k]:6.3f} s" for s in split] for k in split[0]})
            print("\n2. Translator.translate, best of", args.repeats)
            table({f"{s:4.0f} s clip, {'app (spectrograms + way back)' if app else 'CLI (audio only)'}":
                   [pool.apply(measure, (model_dir, b, s, app, args.repeats)) for b in BACKENDS]
                   for s in sorted(args.seconds) for app in (True, False)})
        print("\n3. the CLI end to end (python -m cyclegan.translate), best of", args.repeats)
        table(cli_rows(model_dir, args.repeats, Path(tmp)))


if __name__ == "__main__":
    main()
