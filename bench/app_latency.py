"""How fast the app answers, how it holds up under load, and how much memory it keeps.

    python bench/app_latency.py [--weights weights] [--calls 7] [--clients 20] [--uploads 10]

Starts app.py on a free local port with the given weights, then prints:
  1. a 10 s clip (44.1 kHz stereo wav) through gradio_client, each direction: best and median of
     --calls round trips, beside the in-process Translator.translate time of the same clip;
  2. --clients concurrent clients, two 5 s translations each: wall time and median latency;
  3. server RSS after each of --uploads 10-minute uploads (the app decodes the first 60 s);
  4. the live mode: the streaming translator's delay and its compute per model step (and with the
     decay, in the direction whose model decays).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import torch
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import LIVE_STEP  # noqa: E402
from cyclegan import audio, weights  # noqa: E402
from cyclegan.handlers import TRANSLATOR  # noqa: E402
from cyclegan.stream import StreamingTranslator  # noqa: E402
from cyclegan.translate import Translator  # noqa: E402


def clip(seconds: float, sr: int, channels: int) -> np.ndarray:
    """The bundled examples back to back, looped to `seconds`, at `sr` with `channels`."""
    wave = np.concatenate([audio.load(p, sr) for p in sorted((ROOT / "examples").glob("*.ogg"))])
    wave = np.resize(wave, int(seconds * sr))
    return np.repeat(wave[:, None], channels, 1) if channels > 1 else wave


def serve(weights_root: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """app.py on a free local port (`extra`: more of its flags), once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--weights", str(weights_root), "--port", str(port),
                             *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("app.py did not start within 300 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def latency(url: str, path: Path, directions: list[weights.Direction], tr: dict, calls: int) -> None:
    client = Client(url, verbose=False)
    for d in directions:
        trips = [timed(lambda: client.predict(handle_file(str(path)), d.value, api_name="/translate"))
                 for _ in range(calls)]
        model = tr[d.model_dir]
        inproc = [model.translate(audio.conform(*audio.read(path), model.spec.sample_rate, 2), d.reverse).seconds
                  for _ in range(3)]
        print(f"  {d.value:14s} round trip best {min(trips):.2f} s, median {statistics.median(trips):.2f} s · "
              f"in-process translate best {min(inproc):.2f} s, median {statistics.median(inproc):.2f} s")


def load_test(url: str, path: Path, clients: int) -> None:
    def one(i: int) -> list[float]:
        c = Client(url, verbose=False)
        return [timed(lambda: c.predict(handle_file(str(path)), ("piano2guitar", "guitar2piano")[i % 2],
                                        api_name="/translate")) for _ in range(2)]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = [t for ts in pool.map(one, range(clients)) for t in ts]
    wall = time.perf_counter() - start
    print(f"  {clients} clients x 2 translations of 5 s: {wall:.1f} s wall, {len(lat) / wall:.2f} translations/s, "
          f"latency median {statistics.median(lat):.1f} s, max {max(lat):.1f} s")


def memory(url: str, pid: int, path: Path, uploads: int) -> None:
    client = Client(url, verbose=False)
    print(f"  server RSS before: {rss_mb(pid):.0f} MB")
    peak = 0.0
    for i in range(uploads):
        client.predict(handle_file(str(path)), "piano2guitar", api_name="/translate")
        now = rss_mb(pid)
        peak = max(peak, now)
        print(f"  after upload {i + 1}: {now:.0f} MB")
    print(f"  peak {peak:.0f} MB over {uploads} uploads of 10 minutes")


def live(tr: Translator) -> None:
    wave = clip(20.0, tr.spec.sample_rate, 1)
    runs = [(False, False), (True, False)] + [(r, True) for r in (False, True) if tr.cfg.decays(tr.target(r))]
    for reverse, decay in runs:
        st = StreamingTranslator(tr, reverse, step_seconds=LIVE_STEP, decay=decay)
        steps = []
        for i in range(0, len(wave), 2500):  # Gradio's recorder sends 0.1 s slices
            start = time.perf_counter()
            out = st.feed(wave[i:i + 2500])
            if out.size:
                steps.append((time.perf_counter() - start, len(out) / tr.spec.sample_rate))
        share = [t / s for t, s in steps]
        print(f"  {'reverse' if reverse else 'forward'}{', with the decay' if decay else ''}: "
              f"delay in the model {st.lookahead_seconds:.2f} s "
              f"(look-ahead {st.context / tr.spec.sample_rate:.2f} s + step {st.step / tr.spec.sample_rate:.2f} s); "
              f"compute per step median {1000 * statistics.median(t for t, _ in steps):.0f} ms = "
              f"{statistics.median(share):.0%} of the audio it yields (max {max(share):.0%})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights")
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--uploads", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)  # as app.py runs each request (OMP_NUM_THREADS=1)
    found = weights.directions(args.weights)
    tr = {m: Translator(m, device="cpu", **TRANSLATOR) for m in {d.model_dir for d in found}}  # as the app runs it
    tmp = Path(tempfile.mkdtemp(prefix="app-bench-"))
    ten, five, long = tmp / "ten.wav", tmp / "five.wav", tmp / "ten_minutes.flac"
    sf.write(ten, clip(10.0, 44_100, 2), 44_100, subtype="PCM_16")
    sf.write(five, clip(5.0, 44_100, 2), 44_100, subtype="PCM_16")
    sf.write(long, clip(600.0, 44_100, 1), 44_100, subtype="PCM_16")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    proc, url = serve(args.weights)
    try:
        Client(url, verbose=False).predict(handle_file(str(five)), found[0].value, api_name="/translate")  # warm-up
        print("1. a 10 s clip (44.1 kHz stereo wav) through gradio_client:")
        latency(url, ten, found, tr, args.calls)
        if args.clients:  # 0 skips the part
            print("2. load:")
            load_test(url, five, args.clients)
        if args.uploads:
            print("3. memory:")
            memory(url, proc.pid, long, args.uploads)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print("4. live mode (streaming translator, 0.1 s slices in):")
    live(next(iter(tr.values())))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
