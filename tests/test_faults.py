"""Faults a long run meets, each injected at a chosen moment: signals, damaged checkpoints,
non-finite numbers, full or unwritable disks, orphans, a changed seed or data, replayed logs."""
import errno
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from cyclegan import fit as fit_module
from cyclegan import store
from cyclegan.fit import Interrupted, RunError, RunOptions, find_checkpoint, fit
from cyclegan.training import CycleGAN
from conftest import tiny_config, write_tones


def config(steps: int = 6):
    # no lr decay: a run of 4 steps is then the start of a run of 6; pool 2 so old fakes come back
    return tiny_config(steps=steps, save_every=2, val_every=3, crop_frames=32, pool_size=2, lr_decay=False)


@pytest.fixture(autouse=True)
def no_figures(monkeypatch):
    """Drawing the sample grid is most of a tiny run's time and none of these faults."""
    monkeypatch.setattr(fit_module.plots, "save", lambda fig, path: fig.clear())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def train(domains, out: Path, cache: Path, steps: int = 6, probe=None, **kw) -> CycleGAN:
    opts = RunOptions(*domains, out=out, device="cpu", cache_dir=cache, **kw)
    return fit(config(steps), opts, probe)


def at(phase: str, done: int, action):
    """A probe that runs `action(model)` once, in `phase` of the step after `done` steps."""
    fired = []

    def probe(p, model):
        if p == phase and model.step_count == done and not fired:
            fired.append(p)
            action(model)
    return probe


def kill(sig):
    return lambda model: os.kill(os.getpid(), sig)


def tensors(model: CycleGAN) -> dict[str, torch.Tensor]:
    return {**{f"g.{k}": v for k, v in model.gens.state_dict().items()},
            **{f"d.{k}": v for k, v in model.discs.state_dict().items()}}


def assert_same(model: CycleGAN, other: CycleGAN) -> None:
    want, got = tensors(model), tensors(other)
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


@pytest.fixture(scope="module")
def straight(toy_domains, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    return train(toy_domains, out, cache), out


@pytest.mark.parametrize("sig, phase, done, stops_at", [
    (signal.SIGTERM, "draw", 2, 3),  # before the step's batch is drawn
    (signal.SIGINT, "generator", 2, 3),  # generators updated, discriminators not yet
    (signal.SIGTERM, "discriminator", 3, 4),  # inside the discriminator half
    (signal.SIGINT, "validate", 3, 3),  # after the step, during validation
    (signal.SIGTERM, "save", 4, 4),  # during the periodic save of step 4
])
def test_a_signal_at_any_moment_stops_at_a_step_boundary_and_resumes_exactly(
        toy_domains, cache, straight, tmp_path, sig, phase, done, stops_at):
    out = tmp_path / "run"
    with pytest.raises(Interrupted, match=f"stopped at step {stops_at}; the checkpoint of step {stops_at} "):
        train(toy_domains, out, cache, probe=at(phase, done, kill(sig)))
    assert find_checkpoint(out).tree["step"] == stops_at
    assert_same(straight[0], train(toy_domains, out, cache, resume=True))


def test_a_second_signal_during_the_save_waits_for_it(toy_domains, cache, straight, tmp_path, capfd):
    out = tmp_path / "run"
    both = [at("draw", 2, kill(signal.SIGINT)), at("save", 3, kill(signal.SIGINT))]
    with pytest.raises(Interrupted, match="stopped at step 3"):
        train(toy_domains, out, cache, probe=lambda p, m: [f(p, m) for f in both])
    err = capfd.readouterr().err
    assert "SIGINT: stopping after this step, with a checkpoint" in err
    assert (f"SIGINT: still writing the checkpoint, then it stops; if killed now, the checkpoint of step 2 "
            f"({out / 'checkpoint_0000002.safetensors'}) stands") in err
    assert find_checkpoint(out).tree["step"] == 3
    assert_same(straight[0], train(toy_domains, out, cache, resume=True))


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    body = 8 + int.from_bytes(data[:8], "little")  # safetensors: header length, JSON header, tensors
    if how == "flip":
        g = torch.Generator().manual_seed(0)
        data[body + 100:body + 1100] = torch.randint(256, (1000,), generator=g, dtype=torch.uint8).numpy().tobytes()
    elif how == "truncate":
        data = data[:len(data) // 2]
    elif how == "zero":
        data = bytearray(len(data))
    elif how == "header":
        data[10:40] = b"x" * 30
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate", "zero", "header"])
def test_a_damaged_newest_checkpoint_falls_back_to_an_older_good_one(toy_domains, cache, straight, tmp_path,
                                                                     capsys, how):
    out = tmp_path / "run"
    train(toy_domains, out, cache, steps=4)
    newest = out / "checkpoint_0000004.safetensors"
    damage(newest, how)
    with pytest.raises(store.DamagedFile, match=f"{newest} is damaged"):
        store.read_tree(newest)
    resumed = train(toy_domains, out, cache, resume=True)
    text = capsys.readouterr().out
    assert "resuming from step 2" in text
    assert ("warning: checkpoint_0000004.safetensors is damaged and was set aside as "
            "checkpoint_0000004.safetensors.damaged; resumed from the older checkpoint_0000002.safetensors") in text
    assert (out / "checkpoint_0000004.safetensors.damaged").exists()
    assert_same(straight[0], resumed)


def test_flipped_tensor_bytes_fail_the_checksum(tmp_path):
    store.save_tree(tmp_path / "c.safetensors", {"w": torch.arange(1000.0), "step": 3})
    damage(tmp_path / "c.safetensors", "flip")
    with pytest.raises(store.DamagedFile, match="do not match their checksum"):
        store.read_tree(tmp_path / "c.safetensors")


def test_no_good_checkpoint_left_is_a_clear_error(toy_domains, cache, tmp_path):
    out = tmp_path / "run"
    train(toy_domains, out, cache, steps=2)
    damage(out / "checkpoint_0000002.safetensors", "truncate")
    with pytest.raises(RunError, match="is damaged .*; no older good checkpoint is left in"):
        train(toy_domains, out, cache, resume=True)


def test_a_checkpoint_from_before_checksums_resumes_with_a_note(toy_domains, cache, straight, tmp_path, capsys):
    out = tmp_path / "run"
    train(toy_domains, out, cache, steps=2)
    tree = store.load_tree(out / "checkpoint_0000002.safetensors")
    legacy = {k: v for k, v in tree.items() if k not in ("ranks", "run")} | tree["ranks"][0]
    tensors = {}
    skeleton = store._flatten(legacy, tensors, "t")
    (out / "checkpoint.safetensors").write_bytes(st_save(tensors, metadata={"tree": store.json.dumps(skeleton)}))
    (out / "checkpoint_0000002.safetensors").unlink()
    resumed = train(toy_domains, out, cache, resume=True)
    text = capsys.readouterr().out
    assert "note: checkpoint.safetensors was written before checkpoints carried a checksum; loaded unverified" in text
    assert_same(straight[0], resumed)
    # the old file counts as the oldest of the --keep 3
    assert [p.name for p in sorted(out.glob("checkpoint*"))] == [
        "checkpoint.safetensors", "checkpoint_0000004.safetensors", "checkpoint_0000006.safetensors"]


def poison(module_name: str):
    def action(model):
        with torch.no_grad():
            for p in getattr(model, module_name).parameters():
                p.fill_(float("nan"))
    return action


def test_non_finite_losses_are_never_saved(toy_domains, cache, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunError) as e:
        train(toy_domains, out, cache, probe=at("draw", 2, poison("gens")))
    assert str(e.value) == (f"the losses became non-finite at step 3 (g_adv nan, cycle nan, identity nan, d nan), "
                            f"so nothing was saved; the last good "
                            f"checkpoint is step 2 ({out / 'checkpoint_0000002.safetensors'}): resume from it "
                            "with a lower --lr")
    assert [p.name for p in out.glob("checkpoint*")] == ["checkpoint_0000002.safetensors"]
    assert CycleGAN(config(), torch.device("cpu")).finite()


def test_non_finite_weights_are_never_saved(toy_domains, cache, tmp_path):
    out = tmp_path / "run"  # the discriminators go bad after the step's losses were computed
    with pytest.raises(RunError, match="^the weights are not finite at step 4, so they were not saved; the last "
                                       "good checkpoint is step 2 "):
        train(toy_domains, out, cache, probe=at("save", 4, poison("discs")))
    assert [p.name for p in out.glob("checkpoint*")] == ["checkpoint_0000002.safetensors"]
    tree = find_checkpoint(out).tree
    assert tree["step"] == 2 and all(v.isfinite().all() for v in tree["discs"].values())


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


def test_the_log_after_a_replay_equals_the_uninterrupted_log(toy_domains, cache, tmp_path, monkeypatch):
    """A kill after the log row of step 3 but before a checkpoint of step 3: the resumed run
    replays step 3 and must not log it twice; its seconds go on from the checkpoint's."""
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])

    def tick(p, model):  # ten seconds a step, on a clock only the steps move
        if p == "draw":
            clock[0] += 10

    def killed(p, model):
        tick(p, model)
        if p == "draw" and model.step_count == 3:
            raise SystemExit("killed")

    train(toy_domains, tmp_path / "straight", cache, probe=tick)
    with pytest.raises(SystemExit):
        train(toy_domains, tmp_path / "run", cache, probe=killed)
    train(toy_domains, tmp_path / "run", cache, probe=tick, resume=True)
    logs = [(tmp_path / d / "log.csv").read_text().splitlines() for d in ("straight", "run")]
    assert [row.split(",")[:2] for row in logs[1]] == [["step", "seconds"], ["3", "30.0"], ["6", "60.0"]]
    assert [row.split(",")[:3] for row in logs[1]] == [row.split(",")[:3] for row in logs[0]]
    assert find_checkpoint(tmp_path / "run").tree["run"]["seconds"] == 60.0
