import numpy as np
import pytest
import soundfile as sf
import torch

from cyclegan import audio
from cyclegan.config import SpecConfig

SPEC = SpecConfig()


def music(seconds: float = 2.0, sr: int = SPEC.sample_rate) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * np.exp(-k * t) for f, k in ((220, 1), (330, 2), (1250, 4)))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((ref - est) ** 2)))


def test_spectrogram_has_256_bins_and_the_config_hop():
    x, phase = audio.analyse(music(1.0), SPEC)
    assert x.shape == phase.shape == (256, 1 + SPEC.sample_rate // SPEC.hop_length)
    assert x.min() >= -1 and x.max() <= 1 and x.max() > 0.7  # peak-normalised: the loudest partial is near 0 dB


def test_round_trip_with_input_phase_is_transparent():
    wave = music()
    x, phase = audio.analyse(wave, SPEC)
    back = audio.synthesise(x, phase, SPEC, len(wave))
    normalised, gain = audio.normalise(wave)
    assert gain == pytest.approx(1 / np.abs(wave).max())
    assert snr_db(normalised, back) > 40


def test_log_scale_inverts_within_range():
    mag = torch.tensor([2e-3, 0.1, 1.0, 50.0, 127.0])
    assert torch.allclose(audio.from_model(audio.to_model(mag, SPEC), SPEC), mag, rtol=1e-4)
    assert audio.to_model(torch.tensor([0.0]), SPEC).item() == -1.0


def test_griffin_lim_gives_the_asked_length():
    wave = music(1.0)
    x, _ = audio.analyse(wave, SPEC)
    out = audio.griffin_lim(x, SPEC, len(wave), n_iter=4)
    assert out.shape == wave.shape and np.isfinite(out).all()


def test_conform_downmixes_and_resamples():
    stereo = np.stack([music(1.0, 44_100), np.zeros(44_100, np.float32)], axis=1)
    mono = audio.conform(stereo, 44_100, SPEC.sample_rate)
    assert mono.dtype == np.float32 and len(mono) == SPEC.sample_rate
    pcm = (music(0.5, 8_000) * 32767).astype(np.int16)
    assert np.abs(audio.conform(pcm, 8_000, SPEC.sample_rate)).max() == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("wave, sr, message", [
    (np.zeros(0, np.float32), 25_000, "empty"),
    (np.full(1000, np.nan, np.float32), 25_000, "NaN"),
    (np.zeros((1000, 3), np.float32), 25_000, "3 channels"),
    (np.zeros(1000, np.float32), 4_000, "sample rate 4000"),
    (np.zeros(1000, np.float32), 400_000, "sample rate 400000"),
])
def test_conform_rejects_bad_input(wave, sr, message):
    with pytest.raises(audio.AudioError, match=message):
        audio.conform(wave, sr, SPEC.sample_rate, max_channels=2)


def test_check_usable_rejects_silence_and_short_clips():
    with pytest.raises(audio.AudioError, match="silent"):
        audio.check_usable(np.zeros(25_000, np.float32), 25_000, 0.25)
    with pytest.raises(audio.AudioError, match="0.10 s long"):
        audio.check_usable(music(0.1), 25_000, 0.25)


def test_load_reports_unreadable_files_by_name(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(audio.AudioError, match="empty.wav: the file is empty"):
        audio.load(tmp_path / "empty.wav", 25_000)
    with pytest.raises(audio.AudioError, match="text.wav: not a readable audio file"):
        audio.load(tmp_path / "text.wav", 25_000)
    with pytest.raises(audio.AudioError, match="no such file"):
        audio.load(tmp_path / "missing.wav", 25_000)


def test_save_then_load_round_trips(tmp_path):
    wave = music(0.5)
    audio.save(tmp_path / "x.wav", wave, SPEC.sample_rate)
    assert sf.info(tmp_path / "x.wav").subtype == "PCM_16"
    back = audio.load(tmp_path / "x.wav", SPEC.sample_rate)
    assert np.abs(back - wave).max() < 1e-3


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_cap_bass_limits_only_the_low_bins_to_the_input_plus_a_margin(to):
    spec = SpecConfig()
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-1, 1, (256, 7)).astype(np.float32) for _ in range(2))
    got = np.asarray(audio.cap_bass(to(y), to(x), spec, 125.0, 6.0))
    bins = 3  # 0, 49 and 98 Hz lie below 125 Hz (25 kHz / 511 per bin)
    margin = 6.0 / (spec.db_range / 2)
    np.testing.assert_allclose(got[:bins], np.minimum(y[:bins], x[:bins] + margin), atol=1e-7)
    np.testing.assert_array_equal(got[bins:], y[bins:])
    assert (y[:bins] > x[:bins] + margin).any()  # the cap did bite


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_decay_pulls_a_held_note_down_a_line_from_its_onset_to_the_cut_limit(to):
    unit, fps = SPEC.db_range / 2, SPEC.sample_rate / SPEC.hop_length
    x = np.full((256, 400), -1.0, np.float32)
    x[:, 10:] = 0.4  # every bin struck at frame 10 and held flat
    x[:, 200:] = 0.6  # struck again 10 dB louder
    got = np.asarray(audio.decay(to(x), to(x), SPEC, 40.0, 20.0, 1000.0))
    first = 21  # ceil(1000 Hz * 511 / 25 kHz): the bins below keep the translation
    np.testing.assert_array_equal(got[:first], x[:first])
    scale = audio.decay_scale(SPEC)[first:, None]
    held = np.arange(11, 200) - 14  # frames after the line's last restart: rises at 10 and 11, each held 4 frames
    line = np.maximum(0.4 - 40 * scale * np.maximum(held, 0) / fps / unit, 0.4 - 20 * scale / unit)
    np.testing.assert_allclose(got[first:, 11:200], line, atol=1e-5)
    assert got[first:, 199].max() == pytest.approx(0.4 - 20 * scale.min() / unit, abs=1e-5)  # at the limit
    np.testing.assert_allclose(got[first:, 200:204], 0.6, atol=1e-6)  # the new onset restarts the line
    assert (got[first:, 250] < 0.6 - 1e-3).all() and (got >= -1).all()


def test_decay_reads_no_further_back_than_its_lookback():
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-1, 1, (256, 900)).astype(np.float32) for _ in range(2))
    k = audio.decay_lookback(SPEC, 40.0, 20.0, 0.0)
    line = int(np.ceil((20 + 40 / 0.5) / 40 * SPEC.sample_rate / SPEC.hop_length))  # the slowest bin's span
    assert k == line + audio.DECAY_HOLD + 1  # and the onset test's frames before it
    whole = audio.decay(y, x, SPEC, 40.0, 20.0, 0.0)
    start = 900 - 300
    part = audio.decay(y[:, start - k:], x[:, start - k:], SPEC, 40.0, 20.0, 0.0)
    np.testing.assert_allclose(part[:, k:], whole[:, start:], atol=1e-6)
    tail = audio.decay(y[:, start - k:], x[:, start - k:], SPEC, 40.0, 20.0, 0.0, last=300)  # as a stream asks
    np.testing.assert_array_equal(tail, part[:, k:])
    assert not np.allclose(whole, y)  # the decay did bite
    with pytest.raises(ValueError, match="a decay needs a rate and a cut > 0 and a frequency >= 0, not 0.0, 20.0, 0.0"):
        audio.decay(y, x, SPEC, 0.0, 20.0, 0.0)
