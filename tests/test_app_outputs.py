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

from cyclegan import live_player, plots  # noqa: E402
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


def test_live_probes_at_start_and_sends_status_only_when_the_model_ran(tiny_weights: Path) -> None:
    from types import SimpleNamespace

    from cyclegan import handlers
    from test_handlers import tone

    handlers.reach.cache_clear()
    live = handlers.Live(handlers.App.load(tiny_weights), 0.25, 10)
    assert handlers.reach.cache_info().misses == 2  # both generators probed at start-up
    request = SimpleNamespace(session_hash="s")
    wave = (tone(3.0, 48_000) * 32767).astype(np.int16)
    replies = [live.chunk((48_000, wave[i:i + 4800]), "piano2guitar", "clean", False, request)
               for i in range(0, len(wave), 4800)]  # Gradio's 0.1 s slices
    ran = [isinstance(status, str) for status, _ in replies]
    assert 8 <= sum(ran) <= 12 and not any(ran[:3])  # about one model step per 0.25 s, none before the look-ahead
    assert all(r[0].startswith("Delay in the model") for r, x in zip(replies, ran) if x)
    assert all(r == ({"__type__": "update"},) * 2 for r, x in zip(replies, ran) if not x)
    whole, rate = live.channels["s"].out, next(iter(live.app.translators.values())).spec.sample_rate
    assert whole.qsize() == sum(ran)  # each step's translation went to the whole take's stream ...
    pieces = [live_player.decode(r[1]) for r, x in zip(replies, ran) if x]  # ... and to the page's player
    assert [seq for seq, _, _ in pieces] == list(range(1, sum(ran) + 1)) and {r for _, r, _ in pieces} == {rate}
    took = [whole.get_nowait() for _ in range(whole.qsize())]
    for (_, _, got), want in zip(pieces, took):
        np.testing.assert_allclose(got, np.clip(want, -1, 1), atol=1 / 32767)
    assert handlers.reach.cache_info().misses == 2  # not again in the visitor's first chunk


def test_live_decays_only_into_the_instrument_its_model_names(tiny_weights: Path) -> None:
    from types import SimpleNamespace

    from cyclegan import handlers
    from test_handlers import tone

    live = handlers.Live(handlers.App.load(tiny_weights), 0.25, 10)
    request, wave = SimpleNamespace(session_hash="s"), (tone(1.0, 48_000) * 32767).astype(np.int16)
    streams = []
    for direction, decay, named in (("guitar2piano", True, ""), ("guitar2piano", True, "piano"),
                                    ("guitar2piano", False, "piano"), ("piano2guitar", True, "piano")):
        for tr in live.app.translators.values():
            tr.cfg.decay_into = named  # the tiny model's config names none
        live.chunk((48_000, wave[:4800]), direction, "clean", decay, request)
        streams.append(live.channels["s"].stream)
    assert [s.stream.decay is not None for s in streams] == [False, True, False, False]  # a box left ticked: none
    assert len({id(s) for s in streams}) == 4  # each change of setting starts a new stream


def test_live_player_pieces_round_trip_and_differ_when_silent() -> None:
    wave = np.sin(np.linspace(0, 60, 2500)).astype(np.float32) * 1.2  # clipped at ±1 like the wavs
    seq, rate, got = live_player.decode(live_player.piece(wave, 25_000, 7))
    assert (seq, rate, got.dtype, got.shape) == (7, 25_000, np.float32, wave.shape)
    np.testing.assert_allclose(got, np.clip(wave, -1, 1), atol=1 / 32767)
    silent = np.zeros(2500, np.float32)
    assert live_player.piece(silent, 25_000, 1) != live_player.piece(silent, 25_000, 2)  # both get played
