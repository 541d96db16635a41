"""Faults injected at chosen moments of a run: signals, damaged checkpoints, non-finite numbers,
a kill that makes the next session replay logged steps. Each run must end as an uninterrupted one."""
import signal
import time

import pytest
import torch
from safetensors.torch import save as st_save

from cyclegan import store
from cyclegan.fit import Interrupted, RunError, find_checkpoint
from cyclegan.training import CycleGAN
from faultkit import assert_same, at, cache, config, damage, kill, no_figures, poison, straight, train  # noqa: F401


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
