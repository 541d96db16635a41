"""The training run: data -> steps -> logs, validation, checkpoints -> exported weights.

Runs as one process or under `torchrun` (DDP, gloo on CPU, nccl on GPU); only rank 0 writes.
A run stops only between two steps, so every checkpoint holds whole steps and a resumed run
ends with the same weights as an uninterrupted one (docs/training.md).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from tqdm import tqdm

from . import audio, plots, store, weights
from .augment import RandomEQ
from .config import Config
from .data import CropSampler, Domain, TwinSampler, join_twins, load_domain, load_twins
from .metrics import relative_cycle_error
from .runstate import (CHECKPOINT, Found, Interrupted, Probe, Run, RunError, RunOptions, StopSignals,  # noqa: F401
                       check_data, check_space, find_checkpoint, restore, save, saved_config)
from .training import CycleGAN

LOG_FIELDS = ["step", "seconds", "lr", "g_adv", "cycle", "identity", "d", "val_cycle_a", "val_cycle_b"]
VAL_MAX_FRAMES = 512  # ~2.6 s per held-out clip keeps validation cheap


@torch.no_grad()
def validate(model: CycleGAN, a: Domain, b: Domain) -> tuple[dict[str, float], list[list[plots.Panel]]]:
    spec, gens = model.cfg.spec, model.gens
    scores: dict[str, float] = {}
    rows: list[list[plots.Panel]] = []
    for key, dom, fwd, back, other in (("a", a, gens.a2b, gens.b2a, b.name), ("b", b, gens.b2a, gens.a2b, a.name)):
        errors = []
        for i, arr in enumerate(dom.val):
            x = torch.from_numpy(np.asarray(arr[:, :VAL_MAX_FRAMES], dtype=np.float32))[None, None].to(model.device)
            fake = fwd(x)
            mags = [audio.from_model(t[0, 0].float().cpu(), spec) for t in (x, fake, back(fake))]
            errors.append(relative_cycle_error(mags[0], mags[2]))
            if i == 0:
                rows.append(list(zip([dom.name, f"{dom.name} → {other}", f"{dom.name} → {other} → {dom.name}"],
                                     [m.numpy() for m in mags])))
        scores[f"val_cycle_{key}"] = float(np.mean(errors))
    return scores, rows


class RunLog:
    """CSV + TensorBoard. A resumed run first drops what came after its checkpoint (steps it
    will replay), so each step appears once; the CSV keeps the columns it was started with."""

    def __init__(self, out: Path, step: int):
        path = out / "log.csv"
        text = path.read_text() if path.exists() else ""
        lines = text.splitlines()
        header = lines[0].split(",") if lines and lines[0] else None
        kept = [line for line in lines[1:] if _row_step(line) <= step]
        if header and (len(kept) < len(lines) - 1 or not text.endswith("\n")):
            store.atomic_write_text(path, "\n".join([lines[0], *kept]) + "\n")
        self.file = open(path, "a" if header else "w", newline="")
        self.csv = csv.DictWriter(self.file, header or LOG_FIELDS, extrasaction="ignore")
        if header is None:
            self.csv.writeheader()
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=step + 1 if step else None)

    def write(self, step: int, values: dict[str, float]) -> None:
        self.csv.writerow({"step": step, **{k: v for k, v in values.items() if k in LOG_FIELDS}})
        self.file.flush()
        for k, v in values.items():
            if k not in ("step", "seconds"):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def _row_step(line: str) -> float:
    head = line.split(",", 1)[0]
    return int(head) if head.isdigit() else math.inf  # an unreadable row goes too


def _setup_distributed(device: str) -> tuple[torch.device, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world == 1:
        return torch.device("cuda" if use_cuda else "cpu"), 0, 1
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, local = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        return torch.device("cuda", local), rank, world
    return torch.device("cpu"), rank, world


def _prepare(run: Run) -> Found | None:
    """Orphans removed, folders checked and the checkpoint to resume from found, before any work."""
    opts, out = run.opts, run.out
    if run.rank == 0:
        exported = [Path(opts.weights_root) / opts.export] if opts.export else []
        for folder in [out, *sorted(out.glob("snapshots/step_*")), *exported, opts.cache_dir]:
            gone = store.remove_orphans(folder) if folder else []
            if gone:
                print(f"removed {len(gone)} temp file(s) left in {folder} by an interrupted write")
        store.check_writable(out, "checkpoints")
        if opts.cache_dir:
            store.check_writable(opts.cache_dir, "cached spectrograms")
    found = find_checkpoint(out)
    if found and not opts.resume:
        raise RunError(f"{out} already holds a run (checkpoint {found.path.name}): pass --resume to "
                       "continue it, or choose another --out")
    if opts.resume and not found and run.rank == 0:
        print(f"no checkpoint in {out}; starting from step 0")
    return found


def _flags(run: Run, stepped: bool, bad: bool) -> tuple[bool, bool, bool]:
    """(signalled, out of time, not finite), the same on every rank: a rank that stopped alone
    would hang the others in their next collective. A session makes at least one step."""
    late = stepped and run.opts.time_limit is not None and time.time() - run.start >= run.opts.time_limit
    flags = [run.signals.requested, late, bad]
    if run.world > 1:
        t = torch.tensor([float(f) for f in flags], device=run.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flags = [bool(v) for v in t.tolist()]
    return flags[0], flags[1], flags[2]


def _record(run: Run, log: RunLog | None, bar: tqdm, losses: dict[str, float]) -> None:
    """One log row per step that logs (every 10th) or validates (every val_every-th)."""
    step, t, row = run.model.step_count, run.cfg.train, {}
    if step % 10 == 0 or step == t.steps:
        row = {"lr": run.model.lr_at(step - 1), **losses}
    if log and (step % t.val_every == 0 or step == t.steps):
        run.probe("validate", run.model)
        scores, rows = validate(run.model, *run.doms)
        row.update(scores)
        plots.save(plots.grid(rows, run.cfg.spec), run.out / "samples" / f"step_{step:07d}.png")
        bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    if log and row:
        log.write(step, {"seconds": run.seconds(), **row})


def _draw(run: Run) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One step's crops: A, B and (with twins) the B->A generator's own inputs."""
    a, b = (run.samplers[k].sample(run.cfg.train.batch_size) for k in "ab")
    b_in, b = run.samplers["twin"].mix(b) if "twin" in run.samplers else (None, b)
    if "eq" in run.samplers:
        (a,), (b, b_in) = run.samplers["eq"](a), run.samplers["eq"](b, b_in)
    return a, b, b_in


def _loop(run: Run, log: RunLog | None, bar: tqdm) -> str:
    """Steps until done; returns why it ended: "done", "signal" or "time"."""
    t, model, bad = run.cfg.train, run.model, ""
    first = model.step_count
    while True:
        signalled, late, not_finite = _flags(run, model.step_count > first, bool(bad))
        if not_finite:
            raise RunError(f"the losses became non-finite at step {model.step_count} ({bad or 'on another rank'}), "
                           f"so nothing was saved; {run.last_good()}")
        if signalled or late or model.step_count >= t.steps:
            return "signal" if signalled else "time" if late else "done"
        run.probe("draw", model)
        a, b, b_in = _draw(run)
        res = model.step(a.to(run.device), b.to(run.device), None if b_in is None else b_in.to(run.device))
        bad = ", ".join(f"{k} {v}" for k, v in res.losses.items() if not math.isfinite(v))
        if bad:
            continue
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in res.losses.items()})
        _record(run, log, bar, res.losses)
        if model.step_count % t.save_every == 0:
            save(run)
        if run.rank == 0 and run.opts.snapshot_every and model.step_count % run.opts.snapshot_every == 0:
            _export(run, run.out / "snapshots" / f"step_{model.step_count:07d}")


def _start(run: Run) -> None:
    opts, cfg = run.opts, run.cfg
    found = _prepare(run)
    run.model = CycleGAN(cfg, run.device, run.rank, ddp=run.world > 1)
    run.model.probe = lambda phase: run.probe(phase, run.model)
    check_space(run)
    run.doms = tuple(load_domain(folder, name, cfg.spec, cfg.train, opts.cache_dir, run.rank, run.world)
                     for folder, name in ((opts.domain_a, cfg.name_a), (opts.domain_b, cfg.name_b)))
    run.samplers = {k: CropSampler(d.train, cfg.train.crop_frames, cfg.train.seed * 7919 + run.rank * 2 + i)
                    for i, (k, d) in enumerate(zip("ab", run.doms))}
    if opts.twins_b:
        run.twins = join_twins([load_twins(i, t, cfg.spec, cfg.train, opts.cache_dir, run.rank, run.world)
                                for i, t in opts.twins_b])
        run.samplers["twin"] = TwinSampler(run.twins, cfg.train.crop_frames, cfg.train.twin_fraction,
                                           cfg.train.seed * 7919 + 1000 + run.rank)
    if cfg.train.eq_db:
        run.samplers["eq"] = RandomEQ(cfg.spec, cfg.train.eq_db, cfg.train.seed * 7919 + 2000 + run.rank)
    if found:
        check_data(run, found)
        restore(run, found)
    elif opts.init_from:
        _init_from(run, opts.init_from)
    if opts.compile:
        run.model.compile()


def _init_from(run: Run, model_dir: Path) -> None:
    """Start from an exported model's generators; long blocks it lacks start as the identity,
    so the fine-tune starts from the exported model's very output. Its discriminators, where it
    has them and they fit, come too: fresh ones cost most of the translation first."""
    cfg, start = weights.load(model_dir)
    missing, unexpected = run.model.gens.load_state_dict(start.state_dict(), strict=False)
    grown = run.cfg.model.long_blocks - cfg.model.long_blocks
    added = tuple(f".blocks.{cfg.model.n_blocks + i}." for i in range(cfg.model.long_blocks, run.cfg.model.long_blocks))
    if unexpected or grown < 0 or not all(any(b in k for b in added) for k in missing):
        raise RunError(f"--init-from {model_dir}: its generators do not fit this model "
                       f"(long_blocks {cfg.model.long_blocks} -> {run.cfg.model.long_blocks}; "
                       f"unexpected {unexpected[:3]}, missing {missing[:3]})")
    critics = _init_discriminators(run, Path(model_dir) / weights.DISCS_FILE)
    if run.rank == 0:
        grew = f", {grown} long block(s) added as the identity" if grown else ""
        print(f"generators from {model_dir}{grew}; {critics}")


def _init_discriminators(run: Run, path: Path) -> str:
    if not path.is_file():
        return "discriminators and optimisers start fresh (it has no discriminators)"
    try:
        tensors = store.read_tensors(path)
    except (OSError, SafetensorError) as e:
        raise RunError(f"--init-from: {path} is unreadable ({e}): delete it to start the "
                       "discriminators fresh") from None
    try:
        run.model.discs.load_state_dict(tensors)
    except RuntimeError:  # another --ndf or --d-layers: a shape mismatch
        return "discriminators and optimisers start fresh (its discriminators do not fit --ndf/--d-layers)"
    return "discriminators from it too; optimisers start fresh"


def fit(cfg: Config, opts: RunOptions, probe: Probe | None = None) -> CycleGAN:
    """Train; `probe` is a hook for tests to inject faults at chosen phases, not a user option."""
    device, rank, world = _setup_distributed(opts.device)
    with StopSignals(rank) as signals:
        run = Run(cfg, opts, Path(opts.out), device, rank, world, probe or (lambda phase, model: None), signals)
        _start(run)
        run.start = time.time()  # the time limit and the logged seconds count training, not loading
        log = RunLog(run.out, run.model.step_count) if rank == 0 else None
        bar = tqdm(total=cfg.train.steps, initial=run.model.step_count, disable=rank != 0, dynamic_ncols=True)
        try:
            why = _loop(run, log, bar)
            save(run)
        finally:
            bar.close()
            if log:
                log.close()
    _finish(run, why)
    return run.model


def _fingerprint(model: CycleGAN) -> str:
    h = hashlib.sha256()
    for t in list(model.gens.state_dict().values()) + list(model.discs.state_dict().values()):
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _finish(run: Run, why: str) -> None:
    if run.world > 1:  # every rank must hold the same weights; record what each one has
        prints: list[str | None] = [None] * run.world
        dist.all_gather_object(prints, _fingerprint(run.model))
        if run.rank == 0:
            store.atomic_write_text(run.out / "ranks.json", json.dumps({"world": run.world, "fingerprints": prints}))
        dist.barrier()
        run.model.release_ddp()
        dist.destroy_process_group()
    step = run.model.step_count
    if why == "signal":
        raise Interrupted(f"stopped at step {step}; {run.standing()}: continue with the same command and --resume")
    if why == "time" and run.rank == 0:
        print(f"time limit reached at step {step}; {run.standing()}: continue with --resume")
    if run.rank == 0 and run.opts.export and step >= run.cfg.train.steps:
        print(f"exported {_export(run, Path(run.opts.weights_root) / run.opts.export)}")


def _export(run: Run, dest: Path) -> Path:
    try:
        return weights.export(dest, run.model.gens, run.cfg, run.model.discs)
    except OSError as e:
        raise store.write_failure(e, f"the exported model to {dest}",
                                  f"{run.standing()}: make room, then rerun with --resume") from None
