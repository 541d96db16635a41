"""The tone chain after a translation into guitar."""
import numpy as np
import pytest

from cyclegan import tone


def _sine(seconds: float = 1.0, sr: int = 25_000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_clean_is_the_translation_untouched_and_driven_adds_harmonics():
    wave = _sine()
    assert tone.apply_tone(wave, 25_000, "clean") is wave
    driven = tone.apply_tone(wave, 25_000, "driven")
    assert driven.shape == wave.shape and driven.dtype == np.float32 and np.isfinite(driven).all()
    spectrum = np.abs(np.fft.rfft(driven[5000:]))
    freqs = np.fft.rfftfreq(len(driven) - 5000, 1 / 25_000)
    fundamental = spectrum[np.argmin(np.abs(freqs - 220))]
    third = spectrum[np.argmin(np.abs(freqs - 660))]  # soft clipping makes odd harmonics
    clean = np.abs(np.fft.rfft(wave[5000:]))
    assert third / fundamental > 0.05 > clean[np.argmin(np.abs(freqs - 660))] / clean[np.argmin(np.abs(freqs - 220))]


def test_an_unknown_tone_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown tone 'fuzz': use one of clean, driven"):
        tone.apply_tone(_sine(), 25_000, "fuzz")
    assert tone.has_tones("guitar") and not tone.has_tones("piano")


def test_amp_chain_settings_change_the_sound_and_the_default_is_the_driven_tone():
    wave = _sine()
    default = tone.amp_chain()(wave[None], 25_000)[0]
    assert np.array_equal(default, tone.apply_tone(wave, 25_000, "driven"))
    gentle = tone.amp_chain(drive_db=6.0, cabinet_hz=3_000.0)(wave[None], 25_000)[0]
    odd = lambda w: np.abs(np.fft.rfft(w[5000:]))[np.argmin(np.abs(np.fft.rfftfreq(len(w) - 5000, 1 / 25_000) - 660))]  # noqa: E731
    assert odd(gentle) < odd(default)  # less drive, fewer harmonics
