"""Tests for the judge's recipe: per-band mean removal, the extra instruments and the
leave-one-family-out validation (cyclegan.classifier, cyclegan.variety, cyclegan.judge_recipe)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cyclegan import classifier, judge_recipe, soundfonts, variety
from cyclegan.material import Note

TINY = classifier.ClassifierConfig(window_frames=48, width=4, steps=4, batch_size=4)


def test_band_norm_ignores_a_fixed_eq_but_not_the_envelope() -> None:
    torch.manual_seed(0)
    net = classifier.Net(TINY, 2).eval()
    x = torch.randn(2, TINY.n_mels, TINY.window_frames) * 4 - 30  # nothing near the 80 dB floor
    eq = torch.linspace(-12, 12, TINY.n_mels)[None, :, None]  # a microphone's tilt: constant per band
    with torch.no_grad():
        assert torch.allclose(net(x), net(x + eq), atol=1e-4)
        decay = torch.linspace(0, -30, TINY.window_frames)[None, None, :]
        assert not torch.allclose(net(x), net(x + decay), atol=1e-3)
        plain = classifier.Net(classifier.ClassifierConfig(**{**TINY.__dict__, "band_norm": False}), 2).eval()
        assert not torch.allclose(plain(x), plain(x + eq), atol=1e-3)


def test_band_shift_moves_the_log_mel_and_repeats_the_edge() -> None:
    x = torch.arange(40.0).reshape(10, 4)  # band k holds 4k .. 4k+3
    shifts = set()
    for seed in range(30):
        y = classifier._shift_bands(x, np.random.default_rng(seed), most=3)
        assert y.shape == x.shape
        s = int((y[5, 0] - x[5, 0]).item()) // -4  # band 5 now holds band 5 - s
        shifts.add(s)
        assert torch.equal(y[max(s, 0):10 + min(s, 0)], x[max(-s, 0):10 - max(s, 0)])
        if s > 0:
            assert torch.equal(y[:s], x[:1].expand(s, -1))
        elif s < 0:
            assert torch.equal(y[s:], x[-1:].expand(-s, -1))
    assert shifts == {-3, -2, -1, 0, 1, 2, 3}


def test_pluck_plays_each_note_at_its_pitch() -> None:
    sr = 16_000
    x = variety.pluck([Note(57, 0.1, 0.9, 100)], 1.0, sr, np.random.default_rng(0))  # A3, 220 Hz
    assert x.shape == (sr,) and x.dtype == np.float32
    assert np.abs(x[: int(0.09 * sr)]).max() == 0 and np.abs(x[int(0.1 * sr):int(0.2 * sr)]).max() > 0.05
    spectrum = np.abs(np.fft.rfft(x[int(0.1 * sr):int(0.6 * sr)]))
    assert abs(np.argmax(spectrum) * 2 - 220) < 12  # 0.5 s of audio: 2 Hz bins
    assert np.abs(x[int(0.97 * sr):]).max() < 0.05 * np.abs(x).max()  # damped after the note's end


def test_variety_is_seeded_and_never_plays_the_held_out_family() -> None:
    fonts = soundfonts.resolve_soundfonts(soundfonts.installed_soundfonts())
    assert soundfonts.HELD_OUT_FAMILY in {f.family.name for f in fonts}  # it was offered, and left out
    a = variety.render_variety(fonts, 1, 5, 16_000, 1.0)
    b = variety.render_variety(fonts, 1, 5, 16_000, 1.0)
    assert {c.family for c in a} == {f.family.name for f in fonts} - {soundfonts.HELD_OUT_FAMILY}
    assert {(c.domain, c.program) for c in a} == {(d, p) for d, ps in variety.PROGRAMS.items() for p in ps}
    assert all(np.array_equal(x.wave, y.wave) for x, y in zip(a, b)) and len(a) == len(b)
    assert all(np.abs(c.wave).max() > 0.01 and c.wave.shape == (16_000,) for c in a)
    plucked = variety.plucked_guitars(2, 5, 16_000, 1.0)
    assert [c.domain for c in plucked] == ["guitar", "guitar"] and all(c.family == "plucked" for c in plucked)


def test_leave_one_family_out_never_trains_on_the_family_it_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[set[str]] = []
    real = judge_recipe._train

    def spy(cfg, classes, examples, progress):
        seen.append({e.family for e in examples})
        return real(cfg, classes, examples, progress)

    monkeypatch.setattr(judge_recipe, "_train", spy)
    spec = lambda v: torch.full((TINY.n_mels, 60), float(v))  # noqa: E731
    corpus = [judge_recipe.Example((spec(i), spec(-i)), i % 2, fam) for i, fam in enumerate("AABBAB")]
    extra = [judge_recipe.Example((spec(9), spec(8)), 1, "plucked")]
    result = judge_recipe.leave_one_family_out(TINY, ["piano", "guitar"], corpus, extra, progress=False)
    assert set(result) == {"A", "B"} and seen == [{"B", "plucked"}, {"A", "plucked"}]
    assert [result[f]["clips"] for f in "AB"] == [3, 3]
    assert all(0 <= r[k] <= 1 for r in result.values() for k in judge_recipe.COPIES)
