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
    train, val = data.split(data.list_audio(tmp_path / "d"), cfg(val_fraction=0.5))
    with pytest.warns(UserWarning, match="broken.wav"):
        dom = data.load_domain(tmp_path / "d", "d", SPEC, cfg(val_fraction=0.5), tmp_path / "cache")
    short_in_train = tmp_path / "d" / "short.wav" in train  # a clip shorter than a crop still validates
    assert dom.skipped == {"unreadable": 1, **({"too short": 1} if short_in_train else {})}
    assert len(dom.train) + len(dom.val) == 6 - 1 - short_in_train and len(val) == 3


def test_silent_files_are_skipped_and_a_silent_folder_is_an_error(tmp_path):
    write_tones(tmp_path / "d", 3, "a")
    sf.write(tmp_path / "d" / "silence.wav", np.zeros(25_000), 25_000)
    with pytest.warns(UserWarning, match="silence.wav: the audio is silent"):
        dom = data.load_domain(tmp_path / "d", "d", SPEC, cfg(), None)
    assert dom.skipped == {"silent": 1} and len(dom.train) + len(dom.val) == 3
    (tmp_path / "quiet").mkdir()
    for i in range(3):
        sf.write(tmp_path / "quiet" / f"{i}.wav", np.zeros(25_000), 25_000)
    with pytest.warns(UserWarning, match="silent"), pytest.raises(
            data.DataError, match=r"quiet: no usable audio file of at least 32 frames \(0.16 s\) "
                                  r"to train on \(skipped: 2 silent\)$"):
        data.load_domain(tmp_path / "quiet", "quiet", SPEC, cfg(), None)


def test_a_domain_whose_validation_files_are_all_unreadable_is_an_error(tmp_path):
    write_tones(tmp_path / "d", 4, "a")
    _, val = data.split(data.list_audio(tmp_path / "d"), cfg())
    val[0].write_bytes(b"RIFF....garbage")
    with pytest.warns(UserWarning, match="not a readable audio file"), pytest.raises(
            data.DataError, match=f"d: none of its 1 validation file\\(s\\) can be used \\(1 unreadable\\): "
                                  f"{val[0].name}; replace or remove them$"):
        data.load_domain(tmp_path / "d", "d", SPEC, cfg(), None)


def test_no_readable_file_is_an_error(tmp_path):
    for i in range(3):
        (tmp_path / "d" / f"{i}.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "d" / f"{i}.wav").write_text("not audio")
    with pytest.warns(UserWarning), pytest.raises(data.DataError,
                                                  match=r"no usable audio file .* \(skipped: 2 unreadable\)$"):
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
