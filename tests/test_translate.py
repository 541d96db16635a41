import json
import shutil

import numpy as np
import pytest
import torch

from cyclegan import audio
from cyclegan.config import Config
from cyclegan.metrics import relative_cycle_error
from cyclegan.translate import Translator, main


@pytest.fixture(scope="module")
def translator(tiny_weights) -> Translator:
    return Translator(tiny_weights / "piano_guitar", device="cpu")


@pytest.fixture(scope="module")
def piano(translator, example_clips) -> np.ndarray:
    return audio.load(example_clips["piano_1"], translator.spec.sample_rate)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("phase", ["input", "griffinlim"])
def test_translation_has_the_input_length_and_is_finite_and_audible(translator, piano, reverse, phase):
    res = translator.translate(piano, reverse, phase)
    assert res.sample_rate == 25_000
    for wave in (res.translated, res.reconstructed):
        assert wave.shape == piano.shape and np.isfinite(wave).all()
        assert np.sqrt(np.mean(wave ** 2)) > 1e-3
    frames = 1 + len(piano) // translator.spec.hop_length
    assert {k: v.shape for k, v in res.magnitudes.items()} == {k: (256, frames) for k in
                                                                ("input", "translated", "reconstructed")}
    assert res.cycle_error >= 0 and np.isfinite(res.cycle_error)


def test_level_matching_follows_the_input(translator, piano):
    quiet = 0.05 * piano
    matched = translator.translate(quiet).translated
    assert np.sqrt(np.mean(matched ** 2)) == pytest.approx(np.sqrt(np.mean(quiet ** 2)), rel=1e-3)
    raw = translator.translate(quiet, match_level=False).translated
    assert np.sqrt(np.mean(raw ** 2)) > 5 * np.sqrt(np.mean(quiet ** 2))  # the model's own, normalised level


@pytest.mark.parametrize("length, strength", [(2300 * 128, 1), (2300 * 128 + 77, 1), (2300 * 128 + 77, 1.5)])
def test_segments_join_exactly_like_one_pass(tiny_weights, piano, length, strength):  # ends on / off the frame grid
    wave = np.resize(piano, length)
    one = Translator(tiny_weights / "piano_guitar", "cpu", segment_frames=10 ** 6)
    parts = Translator(tiny_weights / "piano_guitar", "cpu", segment_frames=300, margin_frames=4)  # margins = the reach
    a, b = one.translate(wave, strength=strength), parts.translate(wave, strength=strength)
    for k, v in a.magnitudes.items():
        assert b.magnitudes[k].shape == v.shape == (256, 1 + (length - 1) // 128)  # odd n_fft: 1 + (n-1)//hop
        assert np.allclose(b.magnitudes[k], v, rtol=1e-3, atol=1e-6)
    assert np.abs(b.translated - a.translated).max() < 1e-4 and np.abs(b.reconstructed - a.reconstructed).max() < 1e-4
    assert b.cycle_error == pytest.approx(a.cycle_error, rel=1e-4)
    lean = parts.translate(wave, spectrograms=False, strength=strength)
    assert lean.magnitudes == {} and np.array_equal(lean.translated, b.translated)
    assert lean.cycle_error == pytest.approx(relative_cycle_error(a.magnitudes["input"], a.magnitudes["reconstructed"]),
                                             rel=1e-4)


def test_segments_on_threads_equal_segments_one_by_one(tiny_weights, piano):
    wave = np.resize(piano, 2300 * 128 + 77)
    seen = []
    one = Translator(tiny_weights / "piano_guitar", "cpu", segment_frames=300)
    pool = Translator(tiny_weights / "piano_guitar", "cpu", segment_frames=300, workers=2)
    a, b = one.translate(wave), pool.translate(wave, progress=lambda f, stage: seen.append((f, stage)))
    assert np.array_equal(a.translated, b.translated) and np.array_equal(a.reconstructed, b.reconstructed)
    assert all(np.array_equal(a.magnitudes[k], b.magnitudes[k]) for k in a.magnitudes)
    assert a.cycle_error == b.cycle_error
    shares = [f for f, _ in seen]
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    stages = [stage for _, stage in seen]
    assert stages[0] == "translating" and "reconstructing" in stages


def test_progress_reaches_one(translator, piano):
    seen = []
    translator.translate(np.concatenate([piano] * 3), progress=lambda f, stage: seen.append((f, stage)))
    shares = [f for f, _ in seen]
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    assert {stage for _, stage in seen} == {"translating", "reconstructing"}


def test_a_driven_tone_changes_only_the_translation_into_guitar(translator, piano):
    clean, driven = (translator.translate(piano, tone=t) for t in ("clean", "driven"))
    assert np.array_equal(clean.reconstructed, driven.reconstructed)
    assert driven.translated.shape == clean.translated.shape and not np.allclose(driven.translated, clean.translated)
    with pytest.raises(ValueError, match="a tone applies to translations into guitar, not into piano"):
        translator.translate(piano, reverse=True, tone="driven")


@pytest.mark.parametrize("wave, message", [(np.zeros(25_000, np.float32), "silent"),
                                           (np.ones(1000, np.float32) * 0.5, "at least 0.25 s")])
def test_unusable_audio_is_refused(translator, wave, message):
    with pytest.raises(audio.AudioError, match=message):
        translator.translate(wave)


def test_without_reconstruction_the_translation_is_the_same_bit_for_bit(translator, piano):
    full = translator.translate(piano, spectrograms=False)
    seen = []
    lean = translator.translate(piano, spectrograms=False, reconstruct=False,
                                progress=lambda f, stage: seen.append((f, stage)))
    assert np.array_equal(lean.translated, full.translated)
    assert lean.reconstructed.shape == (0,) and np.isnan(lean.cycle_error) and np.isfinite(full.cycle_error)
    assert {stage for _, stage in seen} == {"translating"} and seen[-1][0] == pytest.approx(1.0)
    shown = translator.translate(piano, reconstruct=False, phase="griffinlim")
    assert set(shown.magnitudes) == {"input", "translated"} and shown.translated.shape == piano.shape


def test_the_onnx_backend_is_cpu_only(tiny_weights):
    with pytest.raises(ValueError, match="the onnx backend runs on the CPU, not on 'cuda'"):
        Translator(tiny_weights / "piano_guitar", "cuda", backend="onnx")


@pytest.mark.parametrize("strength", [2, 1.5])
def test_strength_mixes_in_a_second_pass_on_the_log_scale(translator, piano, strength):
    x, angle = audio.analyse(piano, translator.spec)
    fwd, back = translator.generator(reverse=False)

    def mix(net, v):
        y = translator.run(net, v)
        return y + (strength - 1) * (translator.run(net, y) - y)

    y = mix(fwd, x)
    res = translator.translate(piano, match_level=False, strength=strength)
    expected = audio.synthesise(y, angle, translator.spec, len(piano))
    assert np.abs(res.translated - expected).max() < 1e-5
    assert np.allclose(res.magnitudes["reconstructed"], audio.from_model(mix(back, y), translator.spec).numpy(),
                       rtol=1e-4, atol=1e-6)
    assert not np.allclose(res.translated, translator.translate(piano, match_level=False).translated, atol=1e-3)
    for bad in (0.5, 3):
        with pytest.raises(ValueError, match=f"strength must be between 1 and 2, not {bad}"):
            translator.translate(piano, strength=bad)


def test_the_bass_cap_holds_every_pass_under_its_input_plus_the_margin(tiny_weights, piano):
    tr = Translator(tiny_weights / "piano_guitar", "cpu")
    free = tr.translate(piano, reverse=True, strength=1.5)
    tr.cfg.bass_cap_hz, tr.cfg.bass_cap_db = 300.0, 0.0  # bins 0-6 (up to 294 Hz)
    res = tr.translate(piano, reverse=True, strength=1.5)
    m = res.magnitudes
    assert (m["translated"][:7] <= m["input"][:7] * (1 + 1e-4)).all()
    assert (m["reconstructed"][:7] <= m["translated"][:7] * (1 + 1e-4)).all()  # the way back is a translation too
    assert (free.magnitudes["translated"][:7] > m["input"][:7] * 1.01).any()  # uncapped, it rose above the input
    np.testing.assert_allclose(m["translated"][7:], free.magnitudes["translated"][7:], rtol=1e-5, atol=1e-7)


def test_the_cli_writes_a_stronger_translation_and_refuses_a_strength_out_of_range(tiny_weights, example_clips,
                                                                                   tmp_path):
    clip, args = example_clips["piano_1"], ["--direction", "piano2guitar", "--weights", str(tiny_weights)]
    try:
        assert main([str(clip), *args, "--strength", "2", "--out", str(tmp_path)]) == 0
        with pytest.raises(SystemExit, match="error: --strength must be between 1 and 2, not 3.0"):
            main([str(clip), *args, "--strength", "3", "--out", str(tmp_path / "no")])
    finally:
        torch.set_num_threads(1)  # the CLI takes every core; later tests compare runs made on one thread
    written, sr = audio.read(tmp_path / f"{clip.stem}_piano2guitar.wav")
    assert sr == 25_000 and len(written) > 0.25 * sr and not (tmp_path / "no").exists()


def test_a_config_decays_only_into_the_instrument_it_names():
    cfg = Config()
    assert not cfg.decays("piano") and not cfg.decays("")  # decay_into "" names none
    cfg.decay_into = "piano"
    assert cfg.decays("piano") and not cfg.decays("guitar")


@pytest.fixture(scope="module")
def decaying(tiny_weights) -> Translator:
    tr = Translator(tiny_weights / "piano_guitar", "cpu")
    tr.cfg.decay_into, tr.cfg.decay_min_hz = "piano", 500.0  # the tiny model's config names none
    return tr


def test_segments_join_exactly_with_the_decay(tiny_weights, piano, decaying):
    wave = np.resize(piano, 2300 * 128 + 77)
    parts = Translator(tiny_weights / "piano_guitar", "cpu", segment_frames=300, margin_frames=4)
    parts.cfg = decaying.cfg
    assert parts.margin_frames(1.5, decay=True) > parts.margin_frames(1.5)  # the decay's lookback
    a, b = (t.translate(wave, True, strength=1.5, decay=True) for t in (decaying, parts))
    for k, v in a.magnitudes.items():
        assert np.allclose(b.magnitudes[k], v, rtol=1e-3, atol=1e-6)
    assert np.abs(b.translated - a.translated).max() < 1e-4 and np.abs(b.reconstructed - a.reconstructed).max() < 1e-4


def test_the_decay_only_cuts_above_its_band_and_only_into_its_instrument(decaying, piano):
    plain, faded = (decaying.translate(piano, True, decay=v).magnitudes["translated"] for v in (False, True))
    assert (faded <= plain * (1 + 1e-4)).all() and (faded[11:] < plain[11:] * 0.9).any()  # it cuts, and it bites
    np.testing.assert_allclose(faded[:11], plain[:11], rtol=1e-5, atol=1e-7)  # bins 0-10 lie below 500 Hz
    with pytest.raises(ValueError, match="the decay applies to translations into piano, not guitar"):
        decaying.translate(piano, False, decay=True)


def test_the_cli_decays_into_piano_and_refuses_it_into_guitar(tiny_weights, example_clips, tmp_path):
    clip, args = example_clips["guitar_1"], ["--weights", str(tiny_weights)]
    with pytest.raises(SystemExit, match="--decay shapes translations into none, not guitar2piano"):
        main([str(clip), "--direction", "guitar2piano", "--decay", *args])
    cfg = json.loads((tiny_weights / "piano_guitar" / "config.json").read_text())
    model = tmp_path / "weights" / "piano_guitar"
    shutil.copytree(tiny_weights / "piano_guitar", model)
    (model / "config.json").write_text(json.dumps({**cfg, "decay_into": "piano"}))
    args = ["--weights", str(tmp_path / "weights")]
    for extra, out in (([], "plain"), (["--decay"], "faded")):
        assert main([str(clip), "--direction", "guitar2piano", "--out", str(tmp_path / out), *args, *extra]) == 0
    plain, faded = (audio.load(tmp_path / d / "guitar_1_guitar2piano.wav", 25_000) for d in ("plain", "faded"))
    assert plain.shape == faded.shape and np.abs(plain - faded).max() > 1e-3
    with pytest.raises(SystemExit, match="--decay shapes translations into piano, not piano2guitar"):
        main([str(clip), "--direction", "piano2guitar", "--decay", *args])
