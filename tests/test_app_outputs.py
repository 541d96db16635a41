"""What the app hands to Gradio: wavs served as written, the what-changed difference exactly pooled."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app.py is a top-level script, not part of the package
    sys.path.insert(0, str(ROOT))

import app as app_module  # noqa: E402

from cyclegan import plots  # noqa: E402
from cyclegan.config import SpecConfig  # noqa: E402


def test_wav_player_serves_our_wavs_without_probing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   example_clips: dict[str, Path]) -> None:
    from gradio import processing_utils

    wav = tmp_path / "clip_piano2guitar.wav"
    sf.write(str(wav), np.zeros(2500, np.float32), 25_000, subtype="PCM_16")
    player = app_module.wav_player(type="filepath", interactive=False)
    probed: list[str] = []
    monkeypatch.setattr(processing_utils, "audio_is_playable", lambda p: probed.append(p) or True)
    served = player.postprocess(str(wav))
    assert (served.path, served.orig_name, probed) == (str(wav), "clip_piano2guitar.wav", [])
    assert player.postprocess(None) is None
    other = player.postprocess(str(example_clips["piano_1"]))  # anything else: Gradio's own checks
    assert probed == [str(example_clips["piano_1"])] and other.orig_name == "piano_1.ogg"


def _reference_change(after: np.ndarray, before: np.ndarray, spec: SpecConfig, cols: int) -> np.ndarray:
    """The definition: for each pixel column, the mean over its frames of the dB difference."""
    frames = after.shape[1]
    edges = np.linspace(0, frames, min(cols, frames) + 1).astype(int)
    return np.stack([(plots.to_db(after[:, a:b], spec) - plots.to_db(before[:, a:b], spec)).mean(1)
                     for a, b in zip(edges[:-1], edges[1:])], axis=1)


@pytest.mark.parametrize("frames,block", [(7, 4096), (480, 4096), (1954, 4096), (1954, 100), (3001, 1)])
def test_column_change_is_the_mean_difference_per_pixel(frames: int, block: int) -> None:
    spec, rng = SpecConfig(), np.random.default_rng(frames)
    after, before = (rng.random((spec.n_freq, frames), dtype=np.float32) * 30 + 1e-4 for _ in range(2))
    got = plots.column_change_db(after, before, spec, 480, block=block)
    assert got.shape == (spec.n_freq, min(480, frames))
    np.testing.assert_allclose(got, _reference_change(after, before, spec, 480), atol=1e-4)


def test_live_stream_every_and_step_are_set_by_their_flags(tiny_weights: Path) -> None:
    demo = app_module.build_demo(tiny_weights, live_every=0.5, live_step=0.2)
    streams = [fn for fn in demo.fns.values() if fn.stream_every is not None and fn.name == "chunk"]
    assert [fn.stream_every for fn in streams] == [0.5]
    assert streams[0].fn.__self__.step == 0.2
    default = app_module.build_demo(tiny_weights)
    chunk = next(fn for fn in default.fns.values() if fn.name == "chunk")
    assert (chunk.stream_every, chunk.fn.__self__.step) == (app_module.LIVE_EVERY, app_module.LIVE_STEP)


# --- the live bench's analysis (bench/live_latency.py), on signals with known answers ------

def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    import live_latency

    return live_latency


def test_live_bench_finds_each_note_and_its_delay() -> None:
    bench = _bench()
    rate = 8_000
    wave, starts = bench.test_signal(12.0, rate)
    assert len(starts) >= 8 and len(set(np.round(np.diff(starts), 2))) > 3  # irregular: no period to alias to
    times = np.arange(len(wave) // bench.BLOCK) * bench.BLOCK / rate
    rms = np.sqrt((wave[:len(times) * bench.BLOCK].reshape(-1, bench.BLOCK) ** 2).mean(1))
    sent = bench.onsets(times, rms)
    assert np.abs(sent - starts).max() < 2 * bench.BLOCK / rate
    drift = np.linspace(1.2, 2.1, len(starts))  # a player that stalls now and then: the delay grows
    heard = np.sort(np.append(starts + drift, starts[0] + 0.05))  # plus an early blip that is no note
    np.testing.assert_allclose(bench.match(starts, heard), drift)
    assert np.isnan(bench.match(starts, heard[:-2])[-2:]).all()  # notes never heard back


def test_live_bench_finds_the_segment_of_each_note() -> None:
    bench = _bench()
    clock = np.arange(0, 5, 0.01)  # audio clock (s); perf clock is 1000 s later, in ms
    position = np.clip(clock - 2.0, -1, None)  # the player runs 2 s behind
    blocks = np.stack([clock, (clock + 1000) * 1000, clock * 0, clock * 0, position], 1)
    segments = [(0.5, 1_002_600.0), (0.5, 1_003_100.0), (0.5, None)]  # (duration, arrived at ms)
    got = bench.arrivals(blocks, np.array([0.2, 0.7, 1.2]), np.array([2.0, 2.0, 2.0]), segments)
    np.testing.assert_allclose(got[:2], [2.4, 2.4], atol=0.02)  # segment 0 for 0.2 s, segment 1 for 0.7 s
    assert np.isnan(got[2])  # its segment never arrived


def test_live_probes_at_start_and_sends_status_only_when_the_model_ran(tiny_weights: Path) -> None:
    from types import SimpleNamespace

    from cyclegan import handlers
    from test_handlers import tone

    handlers.reach.cache_clear()
    live = handlers.Live(handlers.App.load(tiny_weights), 0.25, 10)
    assert handlers.reach.cache_info().misses == 2  # both generators probed at start-up
    request = SimpleNamespace(session_hash="s")
    wave = (tone(3.0, 48_000) * 32767).astype(np.int16)
    replies = [live.chunk((48_000, wave[i:i + 4800]), "piano2guitar", "clean", request)
               for i in range(0, len(wave), 4800)]  # Gradio's 0.1 s slices
    ran = [isinstance(r, str) for r in replies]
    assert 8 <= sum(ran) <= 12 and not any(ran[:3])  # about one model step per 0.25 s, none before the look-ahead
    assert all(r.startswith("Delay in the model") for r in replies if isinstance(r, str))
    assert all(r == {"__type__": "update"} for r in replies if not isinstance(r, str))
    played = live.channels["s"].out
    assert played.qsize() == sum(ran)  # each step's translation went to the player
    assert handlers.reach.cache_info().misses == 2  # not again in the visitor's first chunk
