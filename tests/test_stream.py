"""The streaming translator: chunk by chunk it gives the offline translation, and keeps its state."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cyclegan import audio
from cyclegan.stream import LiveStream, Resampler, StreamingTranslator, reach
from cyclegan.tone import amp_chain
from cyclegan.translate import Translator

SR = 25_000


@pytest.fixture(scope="module")
def translator(tiny_weights: Path) -> Translator:
    return Translator(tiny_weights / "piano_guitar", device="cpu")


@pytest.fixture(scope="module")
def clip(example_clips: dict[str, Path]) -> np.ndarray:
    return audio.load(example_clips["piano_1"], SR)


def offline(tr: Translator, wave: np.ndarray, reverse: bool, strength: float | None = None) -> np.ndarray:
    return tr.translate(wave, reverse, match_level=False, spectrograms=False, strength=strength).translated


def stream(st: StreamingTranslator, wave: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    outs, i, k = [], 0, 0
    while i < len(wave):
        n = sizes[k % len(sizes)]
        outs.append(st.feed(wave[i:i + n]))
        i, k = i + n, k + 1
    return [*outs, st.flush()]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("sizes,step,strength", [([2500], 0.0, 1.0), ([137, 4096, 911, 6000], 0.0, 1.0),
                                                 ([20_000], 0.0, 1.5), ([2400], 0.25, 2.0)])
def test_stream_equals_the_offline_translation(translator: Translator, clip: np.ndarray, reverse: bool,
                                               sizes: list[int], step: float, strength: float) -> None:
    _, gain = audio.normalise(clip)
    st = StreamingTranslator(translator, reverse, gain=gain, step_seconds=step, strength=strength)
    joined = np.concatenate(stream(st, clip, sizes)) * gain
    want = offline(translator, clip, reverse, strength)
    assert joined.shape == want.shape
    np.testing.assert_allclose(joined, want, atol=1e-5 * np.abs(want).max())
    assert not np.allclose(want, clip * gain, atol=1e-3)  # the model does change the audio


def test_output_waits_only_for_the_look_ahead(translator: Translator, clip: np.ndarray) -> None:
    st = StreamingTranslator(translator, gain=1.0)
    assert st.feed(clip[:st.context]).size == 0  # nothing is final before a look-ahead has been heard
    total = st.context
    for _ in range(10):
        st.feed(clip[total:total + 1000])
        total += 1000
        assert 0 <= st.heard - st.emitted <= st.context + st.step  # the delay is bounded ...
        assert st.emitted % st.align == 0
        assert len(st.buffer) <= 2 * st.context + st.align + 1000  # ... and so is the memory
    assert st.lookahead_seconds == (st.context + st.align) / SR  # step_seconds=0: one down-sampling block
    stepped = StreamingTranslator(translator, gain=1.0, step_seconds=0.25)
    assert stepped.step >= 0.25 * SR and stepped.step % stepped.align == 0
    sizes = [len(stepped.feed(clip[i:i + 500])) for i in range(0, 3 * SR, 500)]
    assert all(n == 0 or n >= stepped.step for n in sizes) and sum(sizes) > SR  # fewer, longer runs


def test_context_covers_the_generators_reach(translator: Translator) -> None:
    for reverse in (False, True):
        for strength in (1.0, 2.0):
            st = StreamingTranslator(translator, reverse, strength=strength)
            far = reach(translator, reverse, strength)
            assert 0 < far < 256 * strength
            assert st.context >= (far + 4) * translator.spec.hop_length
            assert st.context % st.align == 0
        assert reach(translator, reverse, 2.0) > reach(translator, reverse, 1.0)  # a second pass reaches further
    with pytest.raises(ValueError, match="strength must be between 1 and 2, not 2.5"):
        StreamingTranslator(translator, strength=2.5)


def test_reach_probes_once_however_it_is_called(translator: Translator) -> None:
    reach.cache_clear()
    first = reach(translator, True)
    assert [reach(translator, True, 1.0), reach(translator, 1, strength=1), reach(translator, True, 1, 1e-6)] == [first] * 3
    assert reach.cache_info().misses == 1 and reach.cache_info().hits == 3
    reach(translator, True, 1.5)
    assert reach.cache_info().misses == 2  # another strength is another probe


def test_adaptive_gain_follows_the_loudest_sample(translator: Translator, clip: np.ndarray) -> None:
    st = StreamingTranslator(translator)
    assert st.gain() == 1.0  # nothing heard yet
    st.feed(0.5 * clip[:3000] / np.abs(clip[:3000]).max())
    assert st.gain() == pytest.approx(2.0)


def test_driven_tone_streams_like_the_offline_chain(translator: Translator, clip: np.ndarray) -> None:
    _, gain = audio.normalise(clip)
    joined = np.concatenate(stream(StreamingTranslator(translator, gain=gain, tone="driven"), clip, [3000])) * gain
    want = amp_chain()(offline(translator, clip, False)[None], SR)[0]
    assert joined.shape == want.shape
    np.testing.assert_allclose(joined, want, atol=1e-3)
    with pytest.raises(ValueError, match="into guitar"):
        StreamingTranslator(translator, reverse=True, tone="driven")  # guitar -> piano has no tone


@pytest.mark.parametrize("sizes,step,strength", [([2500], 0.0, 1.0), ([137, 4096, 911, 6000], 0.1, 1.5)])
def test_the_decay_streams_like_the_offline_cut(tiny_weights: Path, example_clips: dict[str, Path],
                                                sizes: list[int], step: float, strength: float) -> None:
    tr = Translator(tiny_weights / "piano_guitar", device="cpu")
    tr.cfg.decay_into = "piano"  # the tiny model's config names none
    guitar = np.tile(audio.load(example_clips["guitar_1"], SR), 2)  # longer than the cut's 2.28 s memory
    _, gain = audio.normalise(guitar)
    st = StreamingTranslator(tr, reverse=True, gain=gain, step_seconds=step, strength=strength, decay=True)
    assert st.lookahead_seconds == StreamingTranslator(tr, True, step_seconds=step, strength=strength).lookahead_seconds
    joined = np.concatenate(stream(st, guitar, sizes)) * gain
    cut = tr.translate(guitar, True, match_level=False, spectrograms=False, strength=strength, decay=True).translated
    assert joined.shape == cut.shape
    np.testing.assert_allclose(joined, cut, atol=1e-5 * np.abs(cut).max())
    assert not np.allclose(cut, offline(tr, guitar, True, strength), atol=1e-3)  # the cut does change the audio
    with pytest.raises(ValueError, match="the decay applies to translations into piano, not guitar"):
        StreamingTranslator(tr, reverse=False, decay=True)


def test_resampler_is_continuous_across_chunks() -> None:
    t = np.arange(48_000) / 48_000
    sine = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    r = Resampler(48_000, SR)
    pieces = [r(sine[i:i + 4800]) for i in range(0, len(sine), 4800)] + [r(np.zeros(0, np.float32), last=True)]
    joined = np.concatenate(pieces)
    assert abs(len(joined) - SR) <= 1
    want = np.sin(2 * np.pi * 440 * np.arange(len(joined)) / SR)
    assert np.abs(joined[500:-500] - want[500:-500]).max() < 1e-2  # no seams at the chunk edges


def test_live_stream_takes_browser_chunks(translator: Translator, clip: np.ndarray) -> None:
    live = LiveStream(translator, False, 48_000, key=("piano2guitar", "clean", 48_000))
    pcm = (np.tile(clip[:SR], 2) * 32767).astype(np.int16)  # 2 s of int16 "microphone" at 48 kHz
    out = np.concatenate([live.feed(pcm[i:i + 4800]) for i in range(0, len(pcm), 4800)])
    assert live.heard_s == pytest.approx(len(pcm) / 48_000)
    assert len(out) > 0.5 * SR and np.abs(out).max() > 0
    assert f"Delay in the model {live.stream.lookahead_seconds:.2f} s" in live.status()
    assert "% of the audio" in live.status()
