"""The Live tab's low-latency player: each model step's translation goes to the page as 16-bit
PCM in an event reply and is scheduled gap-free on a Web Audio clock.

Gradio's streamed audio output is HLS (AAC segments and a polled playlist behind a media
element's buffer): about a second between a segment's audio and the ear. The reply that already
carries the status line carries the audio too, and the page plays it a little ahead of its clock.
"""
from __future__ import annotations

import base64

import numpy as np

LEAD_S = 0.12  # scheduled this far ahead of the page's audio clock: absorbs the replies' jitter
MOST_AHEAD_S = 0.3  # a backlog beyond this (after a stall) is dropped, not played late for good


def piece(wave: np.ndarray, sample_rate: int, seq: int) -> str:
    """One step's translation as the player's value: "seq:rate:base64 of little-endian int16".
    seq makes every value new, so two silent steps in a row are both played."""
    pcm = (np.clip(wave, -1.0, 1.0) * 32767).round().astype("<i2")
    return f"{seq}:{sample_rate}:{base64.b64encode(pcm.tobytes()).decode('ascii')}"


def decode(value: str) -> tuple[int, int, np.ndarray]:
    """piece()'s inverse: (seq, sample rate, float32 samples); what the page's script does."""
    seq, rate, data = value.split(":", 2)
    return int(seq), int(rate), np.frombuffer(base64.b64decode(data), "<i2").astype(np.float32) / 32767


TEMPLATE = "<div class='live-player'>Low-latency player: <span class='live-player-state'>waiting for audio</span></div>"

# Runs once when the component mounts; watch() fires on every new value. The audio context is
# opened at the model's rate (props.rate) by a press inside the microphone box, since some
# browsers start one only within a user gesture. Each piece starts where the last one ends.
JS = """
const state = element.querySelector('.live-player-state');
let ctx = null, next = 0, played = 0, gaps = 0, dropped = 0;
const AC = window.AudioContext || window.webkitAudioContext;
const open = () => {
  if (!AC) { state.textContent = 'this browser has no Web Audio: play the whole take instead'; return false; }
  if (!ctx) {
    try { ctx = new AC({sampleRate: Number(props.rate), latencyHint: 'interactive'}); }
    catch (e) { ctx = new AC({latencyHint: 'interactive'}); }
  }
  if (ctx.state === 'suspended') ctx.resume();
  return true;
};
document.addEventListener('pointerdown', (e) => { if (e.target.closest('#live-mic')) open(); }, true);
watch('value', () => {
  const v = props.value || '', a = v.indexOf(':'), b = v.indexOf(':', a + 1);
  if (a < 0 || b < 0) return;
  const rate = parseInt(v.slice(a + 1, b)), bytes = atob(v.slice(b + 1)), n = bytes.length >> 1;
  if (!n || !open()) return;
  const buf = ctx.createBuffer(1, n, rate), ch = buf.getChannelData(0);
  for (let i = 0; i < n; i++) {
    const u = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
    ch[i] = (u >= 32768 ? u - 65536 : u) / 32767;
  }
  const now = ctx.currentTime;
  if (next < now) { if (next) gaps += 1; next = now + %(lead)s; }
  if (next - now > %(most)s) { dropped += 1; return; }
  const src = ctx.createBufferSource();
  src.buffer = buf; src.connect(ctx.destination); src.start(next);
  next += n / rate; played += n / rate;
  state.textContent = `${played.toFixed(1)} s played, ${Math.round(1000 * (next - now))} ms queued` +
                      (gaps ? `, ${gaps} gaps` : '') + (dropped ? `, ${dropped} dropped` : '');
});
""" % {"lead": LEAD_S, "most": MOST_AHEAD_S}
