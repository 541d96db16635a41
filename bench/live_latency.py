"""The Live tab's end-to-end delay, measured in a real browser.

    python bench/live_latency.py [--weights weights] [--every 0.25 0.5] [--step 0.1] [--seconds 14] [--direction piano2guitar]

For each --every and --step (the app's `--live-every`, its stream_every, and `--live-step`, the
new microphone audio each model run waits for) it starts app.py, opens the Live tab in headless
Chromium whose fake microphone plays a test signal of sharp notes at irregular, known
intervals, and taps, inside the page and on one audio clock, both what the page's microphone
delivers and what the page's live player plays.
Each note's delay is the time from its onset in the microphone to its onset in the played
translation. It also reports how far ahead the player queued what it was sent (its buffer),
and the model's part (look-ahead + one step). Needs Debian's chromium, playwright and ffmpeg.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app_latency import serve  # noqa: E402  (bench/ is on the path when run as a script)

CHROMIUM = "/usr/bin/chromium"
GAPS = (0.9, 1.3, 0.7, 1.1, 1.5, 0.8, 1.2, 1.0)  # irregular: no period for a delay to alias to
BLOCK = 256  # samples per envelope value, at the page's audio rate

# Runs before the page's own scripts: the microphone stream Gradio asks for and whatever the
# page's own audio graphs play (bridged over a MediaStream, which can only add delay) go into one
# ScriptProcessor, which logs both envelopes per block on one audio clock. It also logs how far
# ahead of its clock the page's player queued each piece it was sent.
TAP = """(() => {
  const L = window.__lat = {blocks: [], rate: 0, players: 0, queued: []};
  let ctx = null, merger = null;
  const graph = () => {
    if (ctx) return;
    ctx = new AudioContext(); L.rate = ctx.sampleRate;
    merger = ctx.createChannelMerger(2);
    const proc = ctx.createScriptProcessor(4 * %(block)d, 2, 1);  // few callbacks: the page has work to do
    merger.connect(proc); proc.connect(ctx.destination);
    proc.onaudioprocess = (e) => {
      const a = e.inputBuffer.getChannelData(0), b = e.inputBuffer.getChannelData(1);
      for (let k = 0; k < 4; k++) {
        let sa = 0, sb = 0;
        for (let i = k * %(block)d; i < (k + 1) * %(block)d; i++) { sa += a[i] * a[i]; sb += b[i] * b[i]; }
        L.blocks.push([e.playbackTime + k * %(block)d / ctx.sampleRate, Math.sqrt(sa / %(block)d),
                       Math.sqrt(sb / %(block)d)]);
      }
    };
  };
  const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    const s = await gum(c);
    graph();
    ctx.createMediaStreamSource(s).connect(merger, 0, 0);
    return s;
  };
  const connect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (dest, ...rest) {
    const out = connect.call(this, dest, ...rest);
    if (dest instanceof AudioDestinationNode && this.context !== ctx) {
      graph();
      const c = this.context;
      if (!c.__bridge) {
        c.__bridge = c.createMediaStreamDestination(); L.players += 1;
        connect.call(ctx.createMediaStreamSource(c.__bridge.stream), merger, 0, 1);
      }
      connect.call(this, c.__bridge);
    }
    return out;
  };
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (when, ...rest) {
    L.queued.push((when || 0) - this.context.currentTime);
    return start.call(this, when, ...rest);
  };
})();""" % {"block": BLOCK}


def test_signal(seconds: float, sr: int = 48_000) -> tuple[np.ndarray, np.ndarray]:
    """Plucked notes (a 2 ms attack, then a decay) starting at known, irregular times; silence between."""
    starts, t = [], 0.5
    while t < seconds - 1.0:
        starts.append(t)
        t += GAPS[len(starts) % len(GAPS)]
    wave = np.zeros(int(seconds * sr), np.float32)
    n = int(0.35 * sr)
    tt = np.arange(n) / sr
    for i, s in enumerate(starts):
        f0 = 196.0 * 2 ** ((3 * i % 12) / 12)
        note = sum(np.sin(2 * np.pi * k * f0 * tt) / k for k in range(1, 6)) * np.exp(-tt / 0.08)
        note *= np.minimum(1.0, tt / 0.002)
        a = int(s * sr)
        wave[a:a + n] += (0.3 * note).astype(np.float32)
    return wave, np.array(starts)


def onsets(times: np.ndarray, rms: np.ndarray, below_db: float = 20.0, quiet_s: float = 0.2) -> np.ndarray:
    """Times where the envelope rises to within `below_db` of its top after at least `quiet_s` under it."""
    db = 20 * np.log10(rms + 1e-9)
    loud = db > np.percentile(db, 99.5) - below_db
    out, last_loud = [], -np.inf
    for t, on in zip(times, loud):
        if on:
            if t - last_loud >= quiet_s:
                out.append(t)
            last_loud = t
    return np.array(out)


def match(sent: np.ndarray, heard: np.ndarray, min_delay: float = 0.1) -> np.ndarray:
    """Per sent onset, the delay to its heard onset (NaN if none). The stream keeps the order of
    the notes, but its delay drifts (a stalled player adds to it, a dropped microphone slice takes
    from it), so each note is paired with the next unpaired onset heard at least min_delay later."""
    out, j = [], 0
    for s in sent:
        while j < len(heard) and heard[j] < s + min_delay:
            j += 1
        out.append(float(heard[j] - s) if j < len(heard) else np.nan)
        j += 1
    return np.array(out)


def run(url: str, mic: Path, seconds: float, label: str) -> dict:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page()
            page.add_init_script(TAP)
            page.goto(url, wait_until="load", timeout=120_000)
            page.get_by_role("tab", name="Live").click()
            page.get_by_role("radio", name=label).check()  # the visible tab's own choice
            page.locator("#live-mic").get_by_role("button", name="Record").click()
            # the page's own audio clock says when enough has been heard and played
            page.wait_for_function(f"() => window.__lat.rate && window.__lat.blocks.length * {BLOCK}"
                                   f" >= {seconds} * window.__lat.rate", timeout=int(seconds * 4000) + 60_000,
                                   polling=200)
            status = page.locator("#live-status").inner_text().strip().splitlines()[-1]  # not the timer above it
            page.locator("#live-mic").get_by_role("button", name="Stop").click()
            data = page.evaluate("() => window.__lat")
            data["status"] = status + " · player: " + page.locator("#live-player").inner_text().strip()
        finally:
            browser.close()
    return data


def report(label: str, data: dict, model_delay: float) -> None:
    blocks = np.array(data["blocks"], float)
    if not len(blocks) or data["players"] == 0:
        print(f"  {label}: the page played nothing ({len(blocks)} blocks)")
        return
    sent, heard = onsets(blocks[:, 0], blocks[:, 1]), onsets(blocks[:, 0], blocks[:, 2])
    delay = match(sent, heard, min_delay=model_delay)  # no translated note can come back sooner
    ok = delay[~np.isnan(delay)]
    print(f"  {label} (model's part {model_delay:.2f} s); the page said: {data.get('status', '')}")
    if not ok.size:
        print(f"    {len(sent)} notes sent, {len(heard)} onsets heard, none matched")
        return
    print(f"    {len(ok)}/{len(sent)} notes heard back; end-to-end delay median {statistics.median(ok):.2f} s "
          f"(min {ok.min():.2f}, max {ok.max():.2f}); per note: {' '.join(f'{x:.2f}' for x in ok)}")
    if data.get("queued"):
        q = np.array(data["queued"])
        print(f"    the player queued each of {len(q)} pieces median {np.median(q):.2f} s ahead of its clock "
              f"(max {q.max():.2f}): that part of the delay is the page's buffer")


def model_delay(d, step: float) -> float:
    from cyclegan.stream import StreamingTranslator
    from cyclegan.translate import Translator

    return StreamingTranslator(Translator(d.model_dir, device="cpu"), d.reverse, step_seconds=step).lookahead_seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights")
    ap.add_argument("--every", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--step", type=float, nargs="+", default=[0.1])
    ap.add_argument("--seconds", type=float, default=14.0, help="how long the microphone plays per run")
    ap.add_argument("--direction", default="piano2guitar")
    ap.add_argument("--dump", type=Path, help="also save each run's page log as DUMP/every_<s>_step_<s>.npz")
    args = ap.parse_args()
    from cyclegan.translate import find_direction

    d = find_direction(args.direction, args.weights)
    mic = Path(tempfile.mkdtemp(prefix="live-bench-")) / "notes.wav"
    wave, starts = test_signal(args.seconds + 4.0)
    sf.write(mic, wave, 48_000, subtype="PCM_16")
    print(f"{len(starts)} notes in {args.seconds + 4.0:.0f} s of test signal; direction {args.direction}")
    for every, step in itertools.product(args.every, args.step):
        label = f"every {every:g} s, step {step:g} s"
        proc, url = serve(args.weights, "--live-every", str(every), "--live-step", str(step))
        try:
            data = run(url, mic, args.seconds, d.label)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            np.savez(args.dump / f"every_{every:g}_step_{step:g}.npz", blocks=np.array(data["blocks"], float),
                     queued=np.array(data.get("queued", []), float))
        report(label, data, model_delay(d, step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
