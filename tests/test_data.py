import numpy as np
import pytest
import soundfile as sf
import torch

from cyclegan import data
from cyclegan.config import SpecConfig, TrainConfig
from conftest import write_tones

SPEC = SpecConfig()


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"crop_frames": 32, **kw})


def test_empty_and_missing_folders_say_so(tmp_path):
    with pytest.raises(data.DataError, match="no such folder"):
        data.list_audio(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(data.DataError, match="no audio files"):
        data.list_audio(tmp_path)


def test_all_formats_below_the_folder_are_found(tmp_path):
    write_tones(tmp_path / "a" / "deep", 2, "a")
    x, _ = sf.read(tmp_path / "a" / "deep" / "a0.wav")
    sf.write(tmp_path / "a" / "x.flac", x, 25_000)
    sf.write(tmp_path / "a" / "y.ogg", np.stack([x, x], 1), 44_100)
    assert [p.name for p in data.list_audio(tmp_path / "a")] == ["a0.wav", "a1.wav", "x.flac", "y.ogg"]


def test_split_is_seeded_disjoint_and_holds_out_a_share(tmp_path):
    files = [tmp_path / f"{i:03d}.wav" for i in range(100)]
    train, val = data.split(files, cfg())
    assert len(val) == 8 and not set(train) & set(val) and len(train) + len(val) == 100
    assert data.split(files, cfg()) == (train, val)
    assert data.split(files, cfg(seed=1))[1] != val
    assert len(data.split(files * 10, cfg(val_files=50))[1]) == 50


def test_a_bad_file_is_skipped_and_counted(tmp_path):
    write_tones(tmp_path / "d", 4, "a")
    (tmp_path / "d" / "broken.wav").write_bytes(b"RIFF....garbage")
    sf.write(tmp_path / "d" / "short.wav", np.zeros(500) + 0.1, 25_000)
    with pytest.warns(UserWarning, match="broken.wav"):
        dom = data.load_domain(tmp_path / "d", "d", SPEC, cfg(val_fraction=0.01), tmp_path / "cache")
    assert dom.skipped.get("unreadable", 0) + dom.skipped.get("too short", 0) >= 1
    assert len(dom.train) + len(dom.val) >= 4


def test_no_readable_file_is_an_error(tmp_path):
    for i in range(3):
        (tmp_path / "d" / f"{i}.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "d" / f"{i}.wav").write_text("not audio")
    with pytest.warns(UserWarning), pytest.raises(data.DataError, match="no readable audio file"):
        data.load_domain(tmp_path / "d", "d", SPEC, cfg(), None)


def test_files_shorter_than_a_crop_are_an_error_when_nothing_else_is_left(tmp_path):
    write_tones(tmp_path / "d", 3, "a", seconds=0.1)
    with pytest.warns(UserWarning, match="shorter than one crop"), pytest.raises(data.DataError, match="32 frames"):
        data.load_domain(tmp_path / "d", "d", SPEC, cfg(), None)


def test_spectrograms_are_cached_and_invalidated_by_a_change(tmp_path, monkeypatch):
    (path,) = write_tones(tmp_path / "d", 1, "a")
    first = data.spectrogram(path, SPEC, tmp_path / "cache")
    assert first.dtype == np.float16 and first.shape[0] == 256
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data.audio, "load", no_decoding)
    assert np.array_equal(data.spectrogram(path, SPEC, tmp_path / "cache"), first)
    monkeypatch.undo()
    sf.write(path, 0.5 * sf.read(path)[0][::-1], 25_000)  # same name, new content and mtime
    assert not np.array_equal(data.spectrogram(path, SPEC, tmp_path / "cache"), first)
    data.spectrogram(path, SpecConfig(hop_length=64), tmp_path / "cache")  # another config, another entry
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def test_crops_have_the_asked_shape_and_are_reproducible():
    specs = [np.random.default_rng(i).uniform(-1, 1, (256, n)).astype(np.float16) for i, n in enumerate([40, 300])]
    s1, s2 = data.CropSampler(specs, 32, seed=3), data.CropSampler(specs, 32, seed=3)
    a, b = s1.sample(5), s2.sample(5)
    assert a.shape == (5, 1, 256, 32) and a.dtype == torch.float32 and torch.equal(a, b)
