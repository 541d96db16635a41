"""A run's checks: folders and free space before the first step, a full disk mid-run, orphan temp
files, checksums, and a resume that would quietly change the seed or the data."""
import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from cyclegan import store
from cyclegan.fit import RunError, RunOptions, find_checkpoint, fit
from conftest import write_tones
from faultkit import assert_same, at, cache, config, damage, no_figures, straight, train  # noqa: F401


def test_flipped_tensor_bytes_fail_the_checksum(tmp_path):
    store.save_tree(tmp_path / "c.safetensors", {"w": torch.arange(1000.0), "step": 3})
    damage(tmp_path / "c.safetensors", "flip")
    with pytest.raises(store.DamagedFile, match="do not match their checksum"):
        store.read_tree(tmp_path / "c.safetensors")


def test_an_unwritable_folder_is_found_before_the_first_step(toy_domains, cache, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    bad = tmp_path / "file" / "sub"
    steps = []
    probe = lambda p, m: steps.append(p)  # noqa: E731
    for kw, what in [({"out": bad}, "checkpoints"), ({"cache_dir": bad}, "cached spectrograms"),
                     ({"export": "toy", "weights_root": bad}, "exported weights")]:
        opts = {"out": tmp_path / what, "cache": cache, **kw}
        with pytest.raises(store.StorageError) as e:
            train(toy_domains, opts.pop("out"), opts.pop("cache_dir", cache), probe=probe,
                  **{k: v for k, v in opts.items() if k != "cache"})
        assert str(e.value) == (f"cannot write the {what} to {bad} (Not a directory): "
                                "choose another folder or fix its permissions")
    assert steps == []


def test_too_little_free_space_is_found_before_the_first_step(toy_domains, cache, straight, tmp_path, monkeypatch):
    monkeypatch.setattr(store.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(store.StorageError, match=f"^{tmp_path / 'run'} has 0.0 MB free, but the checkpoints need "
                                                 r"about (\S+) MB: free some space or choose another folder$") as e:
        train(toy_domains, tmp_path / "run", cache)
    assert list((tmp_path / "run").iterdir()) == []
    need = float(str(e.value).split("about ")[1].split(" MB")[0]) * 1e6
    size = (straight[1] / "checkpoint_0000006.safetensors").stat().st_size
    assert size <= need < 2 * size  # the estimate covers a real checkpoint, and not by far


def test_a_full_disk_mid_run_keeps_the_previous_checkpoint(toy_domains, cache, straight, tmp_path, monkeypatch):
    out, full, fsync = tmp_path / "run", [], os.fsync

    def fake_fsync(fd):
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", fake_fsync)
    with pytest.raises(store.StorageError) as e:
        train(toy_domains, out, cache, probe=at("draw", 3, lambda m: full.append(1)))
    assert str(e.value) == (f"could not write the checkpoint of step 4 to {out / 'checkpoint_0000004.safetensors'} "
                            f"(No space left on device); the checkpoint of step 2 "
                            f"({out / 'checkpoint_0000002.safetensors'}) stands: make room, then rerun with --resume")
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["checkpoint_0000002.safetensors", "config.json",
                                                                   "log.csv"]  # no temp file left
    full.clear()
    assert_same(straight[0], train(toy_domains, out, cache, resume=True))


def test_orphan_temp_files_are_removed_at_start(toy_domains, tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    out.mkdir(), cache.mkdir()
    dead = 2**22 + 1  # above Linux's largest pid: no such process
    orphans = [out / ".checkpoint.safetensors.k2j3h4.tmp", out / f".checkpoint_0000010.safetensors.{dead}.x1.tmp",
               cache / f"0123abcd.{dead}.tmp"]
    live = cache / f"4567ef.{os.getpid()}.tmp"  # another rank or run is writing it
    for p in [*orphans, live]:
        p.write_bytes(b"partial")
    train(toy_domains, out, cache, steps=1)
    assert [p.exists() for p in orphans] == [False, False, False] and live.exists()
    text = capsys.readouterr().out
    assert f"removed 2 temp file(s) left in {out} by an interrupted write" in text
    assert f"removed 1 temp file(s) left in {cache} by an interrupted write" in text


def test_resume_refuses_a_changed_seed_or_data_unless_allowed(toy_domains, cache, tmp_path, capsys):
    out = tmp_path / "run"
    train(toy_domains, out, cache, steps=2)
    cfg = config(4)
    cfg.train.seed = 1
    with pytest.raises(RunError, match=r"^--resume would change --seed 1 \(was 0\), so the validation split or the "
                                       "training crops would no longer be the run's own; resume with the run's "
                                       "settings and data, or pass --allow-data-change to accept that$"):
        fit(cfg, RunOptions(*toy_domains, out=out, device="cpu", cache_dir=cache, resume=True))
    other = tmp_path / "other"
    shutil.copytree(toy_domains[0], other)
    moved = (other, toy_domains[1])
    with pytest.raises(RunError, match=f"^--resume would change domain A {other} \\(was {toy_domains[0]}\\)"):
        train(moved, out, cache, steps=4, resume=True)
    write_tones(toy_domains[0].parent / "extra", 1, "a")
    shutil.copy(toy_domains[0].parent / "extra" / "a0.wav", other / "new.wav")
    opts = RunOptions(*moved, out=out, device="cpu", cache_dir=cache, resume=True, allow_data_change=True)
    assert fit(cfg, opts).step_count == 4
    assert (f"--allow-data-change: continuing with --seed 1 (was 0), domain A {other} (was {toy_domains[0]}); "
            "from here on the training crops") in capsys.readouterr().out
    assert find_checkpoint(out).tree["config"]["train"]["seed"] == 1
    with pytest.raises(RunError, match=r"^--resume would change the files in "):
        (other / "new.wav").unlink()
        cfg.train.steps = 6
        fit(cfg, RunOptions(*moved, out=out, device="cpu", cache_dir=cache, resume=True))


def test_a_new_run_does_not_overwrite_an_old_one(toy_domains, cache, tmp_path):
    train(toy_domains, tmp_path / "run", cache, steps=1)
    with pytest.raises(RunError, match="already holds a run .*: pass --resume to continue it, or choose another --out"):
        train(toy_domains, tmp_path / "run", cache, steps=1)


def test_recorded_paths_are_repository_relative_even_through_a_link(tmp_path, monkeypatch):
    root, disk = tmp_path / "repo", tmp_path / "disk"
    (disk / "corpus").mkdir(parents=True)
    root.mkdir()
    (root / "data").symlink_to(disk)
    monkeypatch.setattr(store, "REPO_ROOT", root)
    assert store.repo_relative(root / "data" / "corpus") == "data/corpus"  # named as given, not as linked
    assert store.repo_relative(root / "runs" / ".." / "weights") == "weights"
    assert store.repo_relative(disk / "corpus") == str(disk / "corpus")
    monkeypatch.chdir(root)
    assert store.repo_relative(Path("data/corpus")) == "data/corpus"
