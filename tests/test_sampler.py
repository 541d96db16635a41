"""Tests for the recorded instruments (cyclegan.sampler): pitch, damping, length, their files."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cyclegan import sampler
from cyclegan.material import Note

SR = 16_000


@pytest.fixture(scope="module")
def piano() -> sampler.Sampler:
    return sampler.Sampler(sampler.GRAND, sample_rate=SR)


@pytest.fixture(scope="module")
def guitar() -> sampler.Sampler:
    return sampler.Sampler(sampler.GUITAR, sample_rate=SR)


def f0(y: np.ndarray, lo: float, hi: float) -> float:
    """The strongest spectral peak between lo and hi Hz (the fundamental of a mid-range piano note)."""
    spec = np.abs(np.fft.rfft(y[: SR] * np.hanning(SR), 8 * SR))
    f = np.fft.rfftfreq(8 * SR, 1 / SR)
    band = (f > lo) & (f < hi)
    return float(f[band][spec[band].argmax()])


@pytest.mark.parametrize("pitch", [57, 58, 59, 60, 70])  # A3 and C4 are recorded; the rest resampled from them
def test_every_note_sounds_at_its_pitch(piano: sampler.Sampler, pitch: int) -> None:
    hz = 440 * 2 ** ((pitch - 69) / 12)
    assert abs(np.log2(f0(piano.note(pitch, 1.0), hz * 0.8, hz * 1.2) / hz) * 1200) < 20  # cents


@pytest.mark.parametrize("pitch", [45, 47, 52, 60, 64])  # A2 and C4 are recorded; the rest resampled
def test_every_guitar_note_sounds_at_its_pitch(guitar: sampler.Sampler, pitch: int) -> None:
    hz = 440 * 2 ** ((pitch - 69) / 12)
    assert abs(np.log2(f0(guitar.note(pitch, 1.0), hz * 0.9, hz * 1.1) / hz) * 1200) < 20  # cents
    assert 0.05 < np.abs(guitar.note(pitch, 1.0)[: SR // 20]).max()  # the pluck starts at once, no codec delay


def test_detune_moves_the_pitch(piano: sampler.Sampler) -> None:
    plain, sharp = f0(piano.note(60, 1.0), 200, 320), f0(piano.note(60, 1.0, cents=50), 200, 320)
    assert 40 < np.log2(sharp / plain) * 1200 < 60


def test_a_note_off_damps_the_note_and_velocity_sets_the_level(piano: sampler.Sampler) -> None:
    y = piano.note(60, 0.5, 100)
    level = lambda a, b: 10 * np.log10(np.mean(y[int(a * SR):int(b * SR)] ** 2) + 1e-20)  # noqa: E731
    assert level(0.3, 0.5) - level(0.9, 1.0) > 40
    assert np.abs(piano.note(60, 0.5, 50)).max() < 0.5 * np.abs(y).max()


def test_render_is_the_clip_length_and_silent_without_notes(piano: sampler.Sampler) -> None:
    notes = [Note(48, 0.0, 1.0, 90), Note(64, 0.5, 3.0, 80), Note(72, 1.9, 2.5, 70)]  # the last runs past the end
    y = piano.render(notes, 2.0)
    assert y.shape == (2 * SR,) and y.dtype == np.float32 and np.abs(y).max() > 0.01
    assert not piano.render([], 2.0).any() and not piano.render([Note(60, 2.5, 3.0, 90)], 2.0).any()


@pytest.mark.parametrize("rec", [sampler.GRAND, sampler.GUITAR], ids=["grand", "guitar"])
def test_fingerprint_follows_the_files_and_a_missing_folder_is_named(tmp_path: Path, rec: sampler.Recording) -> None:
    fp = sampler.fingerprint(rec)
    assert fp["name"] == rec.name and fp["licence"].startswith("CC BY 3.0") and len(fp["sha256"]) == 64
    copy = tmp_path / "s"
    shutil.copytree(rec.folder, copy)
    assert sampler.fingerprint(replace(rec, folder=copy)) == fp
    (copy / "060.ogg").unlink()
    assert sampler.fingerprint(replace(rec, folder=copy))["sha256"] != fp["sha256"]
    with pytest.raises(FileNotFoundError, match="no samples"):
        sampler.Sampler(replace(rec, folder=tmp_path / "empty"))
    assert (rec.folder / "LICENSE").is_file()
