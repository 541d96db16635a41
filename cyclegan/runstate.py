"""A run's state and its checkpoints: what is saved, how it is found, checked and restored.

Checkpoints are numbered (checkpoint_0000500.safetensors), the newest --keep kept, each with a
checksum; a damaged newest one falls back to the newest good one. What all ranks share is
saved once, what each rank holds alone (pools, RNG) once per rank.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from . import store, weights
from .augment import RandomEQ
from .config import Config
from .data import CropSampler, Domain, Twins, TwinSampler
from .training import CycleGAN

CHECKPOINT = "checkpoint.safetensors"  # kept as checkpoint_0000500.safetensors and so on
DATA_KEYS = ("seed", "val_files", "val_fraction")  # settings that choose the validation split
Probe = Callable[[str, CycleGAN], None]  # (phase, model): a fault-injection hook for tests only


class RunError(Exception):
    """A run that cannot go on; the message says why, what stands on disk and what to do."""


class Interrupted(RunError):
    """Stopped by SIGINT or SIGTERM, after saving a checkpoint."""


@dataclass
class RunOptions:
    domain_a: Path
    domain_b: Path
    out: Path
    device: str = "auto"
    resume: bool = False
    export: str | None = None
    weights_root: Path = weights.DEFAULT_ROOT
    cache_dir: Path | None = None
    compile: bool = False
    time_limit: float | None = None  # seconds of wall time, then stop with a checkpoint
    snapshot_every: int = 0  # also export the generators every N steps, to choose among later
    init_from: Path | None = None  # an exported model whose generators a new run starts from
    keep: int = 3  # newest checkpoints kept; an older one is the way back from a damaged newest
    allow_data_change: bool = False  # resume although the seed, split or data folders changed
    # ((inputs, targets), ...): extra B->A inputs, each cycled to its same-named twin in targets
    twins_b: tuple[tuple[Path, Path], ...] | None = None


@dataclass
class Run:
    """Everything one session of a run holds."""
    cfg: Config
    opts: RunOptions
    out: Path
    device: torch.device
    rank: int
    world: int
    probe: Probe
    signals: StopSignals
    model: CycleGAN | None = None
    doms: tuple[Domain, Domain] | None = None
    samplers: dict[str, CropSampler | TwinSampler | RandomEQ] = field(default_factory=dict)
    twins: Twins | None = None
    saved: tuple[int, Path] | None = None
    seconds_before: float = 0.0
    start: float = 0.0

    def seconds(self) -> float:
        """Training wall time over every session of the run."""
        return round(self.seconds_before + time.time() - self.start, 1)

    def standing(self) -> str:
        if self.saved is None:
            return "no checkpoint of this run was written yet"
        return f"the checkpoint of step {self.saved[0]} ({self.saved[1]}) stands"

    def last_good(self) -> str:
        if self.saved is None:
            return "no checkpoint was written yet: start again with a lower --lr"
        return f"the last good checkpoint is step {self.saved[0]} ({self.saved[1]}): resume from it with a lower --lr"


class StopSignals:
    """SIGINT and SIGTERM only ask the run to stop after the step in progress (the loop saves,
    then exits); a second signal says what is happening rather than cut a checkpoint short."""

    def __init__(self, rank: int):
        self.rank, self.requested, self.saving = rank, False, False
        self.on_disk = "no checkpoint of this run was written yet"
        self.old: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            self.old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.rank == 0:  # os.write: print may not be re-entered from a handler
            now = "writing the checkpoint" if self.saving else "finishing the step in progress"
            msg = ("stopping after this step, with a checkpoint" if not self.requested
                   else f"still {now}, then it stops; if killed now, {self.on_disk}")
            os.write(2, f"\n{signal.Signals(signum).name}: {msg}\n".encode())
        self.requested = True


@dataclass
class Found:
    tree: dict[str, Any]
    path: Path
    damaged: list[Path]
    checked: bool


def find_checkpoint(out: Path) -> Found | None:
    """The newest checkpoint in `out` that loads and matches its checksum."""
    damaged, reasons = [], []
    for _, path in store.versions(out, CHECKPOINT):
        try:
            tree, checked = store.read_tree(path)
        except store.DamagedFile as e:
            damaged.append(path)
            reasons.append(str(e))
            continue
        return Found(tree, path, damaged, checked)
    if damaged:
        raise RunError(f"{'; '.join(reasons)}; no older good checkpoint is left in {out}: "
                       "start afresh in another --out")
    return None


def saved_config(out: Path) -> Config | None:
    """The config of the checkpoint a resumed run would start from, if there is one."""
    found = find_checkpoint(Path(out))
    return Config.from_dict(found.tree["config"]) if found else None


def check_space(run: Run) -> None:
    """Room for the next checkpoint (and the export), found before the first step."""
    if run.rank != 0:
        return
    t, params = run.cfg.train, lambda m: sum(p.numel() * 4 for p in m.parameters())
    pools = run.world * 2 * t.pool_size * run.cfg.spec.n_freq * t.crop_frames * 4
    gens = params(run.model.gens)
    # weights and two Adam moments, each rank's pools, then the JSON header and RNG states
    need = int(1.1 * (3 * (gens + params(run.model.discs)) + pools)) + 2**20 + (gens if run.opts.snapshot_every else 0)
    store.check_writable(run.out, "checkpoints", need)
    if run.opts.export:
        store.check_writable(Path(run.opts.weights_root), "exported weights", gens)


def _data_record(run: Run) -> dict[str, Any]:
    doms = {k: {"folder": store.repo_relative(d.folder), "files": d.files} for k, d in zip("ab", run.doms)}
    if run.twins:
        folders = ", ".join(store.repo_relative(inputs) for inputs, _ in run.opts.twins_b)
        doms["twin"] = {"folder": folders, "files": run.twins.files}
    return {**doms, **{k: getattr(run.cfg.train, k) for k in DATA_KEYS}}


def _data_changes(found: Found, now: dict[str, Any]) -> list[str]:
    then = {**found.tree.get("run", {}).get("data", {}), **Config.from_dict(found.tree["config"]).train.__dict__}
    changes = [f"--{k.replace('_', '-')} {now[k]} (was {then[k]})" for k in DATA_KEYS if then[k] != now[k]]
    if "a" in then and ("twin" in then) != ("twin" in now):
        changes.append("twin inputs " + (f"added ({now['twin']['folder']})" if "twin" in now else "dropped"))
    for k in ("a", "b", "twin"):
        if k not in then or k not in now:  # a checkpoint from before data was recorded
            continue
        if then[k]["folder"] != now[k]["folder"]:
            changes.append(f"domain {k.upper()} {now[k]['folder']} (was {then[k]['folder']})")
        elif then[k]["files"] != now[k]["files"]:
            changes.append(f"the files in {now[k]['folder']}")
    return changes


def check_data(run: Run, found: Found) -> None:
    changes = _data_changes(found, _data_record(run))
    if changes and not run.opts.allow_data_change:
        raise RunError(f"--resume would change {', '.join(changes)}, so the validation split or the "
                       "training crops would no longer be the run's own; resume with the run's settings "
                       "and data, or pass --allow-data-change to accept that")
    if changes and run.rank == 0:
        print(f"--allow-data-change: continuing with {', '.join(changes)}; from here on the training "
              "crops (and, for a new seed or folder, the validation split) differ from the original run's")


def restore(run: Run, found: Found) -> None:
    model, tree = run.model, found.tree
    model.load_state_dict(tree)
    ranks = tree.get("ranks") or [{"pools": tree["pools"], "rng": tree["rng"]}]  # older files: one rank
    rng = model.load_rank_state(ranks[run.rank % len(ranks)])
    for k, s in run.samplers.items():
        if f"sampler_{k}" in rng:  # twins or an EQ added on --resume start from their seed
            s.rng.set_state(rng[f"sampler_{k}"])
    run.saved, run.seconds_before = (model.step_count, found.path), tree.get("run", {}).get("seconds", 0.0)
    run.signals.on_disk = run.standing()
    if run.world > 1:
        dist.barrier()  # every rank has read its checkpoint before a damaged one is moved aside
    if run.rank != 0:
        return
    print(f"resuming from step {model.step_count} ({found.path})")
    if not found.checked:
        print(f"note: {found.path.name} was written before checkpoints carried a checksum; loaded unverified")
    if len(ranks) != run.world:
        print(f"note: the checkpoint was written by {len(ranks)} process(es) and this run has {run.world}; "
              "the crops and history pools will not match an uninterrupted run")
    for path in found.damaged:
        path.rename(path.with_name(path.name + ".damaged"))
        print(f"warning: {path.name} is damaged and was set aside as {path.name}.damaged; "
              f"resumed from the older {found.path.name}")


def _rank_states(run: Run) -> list[dict[str, Any]]:
    """Every rank's pools and RNG, gathered: all ranks are at the same step when this runs."""
    mine = run.model.rank_state({f"sampler_{k}": s.rng.get_state() for k, s in run.samplers.items()})
    if run.world == 1:
        return [mine]
    every: list[Any] = [None] * run.world
    dist.all_gather_object(every, mine)
    return every


def save(run: Run) -> None:
    step = run.model.step_count
    if run.saved is not None and run.saved[0] == step:
        return
    path = store.version_path(run.out, CHECKPOINT, step)
    run.signals.saving = True
    try:
        run.probe("save", run.model)
        states = _rank_states(run)
        if not run.model.finite():
            raise RunError(f"the weights are not finite at step {step}, so they were not saved; {run.last_good()}")
        if run.rank == 0:
            _write(run, path, states)
    finally:
        run.signals.saving = False
    run.saved = (step, path)
    run.signals.on_disk = run.standing()


def _write(run: Run, path: Path, states: list[dict[str, Any]]) -> None:
    tree = {**run.model.state_dict(), "ranks": states,
            "run": {"seconds": run.seconds(), "world": run.world, "data": _data_record(run)}}
    try:
        store.save_tree(path, tree)
        run.cfg.save(run.out / "config.json")
    except OSError as e:
        raise store.write_failure(e, f"the checkpoint of step {run.model.step_count} to {path}",
                                  f"{run.standing()}: make room, then rerun with --resume") from None
    store.prune_versions(run.out, CHECKPOINT, run.opts.keep)
