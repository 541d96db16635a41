"""The training run: data -> steps -> logs, validation, checkpoints -> exported weights.

Runs as one process or under `torchrun` (DDP, gloo on CPU, nccl on GPU); only rank 0 writes.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from . import audio, plots, weights
from .config import Config
from .data import CropSampler, Domain, load_domain
from .metrics import relative_cycle_error
from .store import load_tree
from .training import CycleGAN

CHECKPOINT = "checkpoint.safetensors"
LOG_FIELDS = ["step", "seconds", "lr", "g_adv", "cycle", "identity", "d", "val_cycle_a", "val_cycle_b"]
VAL_MAX_FRAMES = 512  # ~2.6 s per held-out clip keeps validation cheap


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
    until: int | None = None  # stop early at this step, as a kill would (used by tests)
    time_limit: float | None = None  # seconds of wall time, then stop with a checkpoint
    snapshot_every: int = 0  # also export the generators every N steps, to choose among later
    init_from: Path | None = None  # an exported model whose generators a new run starts from


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


def saved_config(out: Path) -> Config | None:
    """The config of the checkpoint in `out`, if there is one (a resumed run starts from it)."""
    ckpt = Path(out) / CHECKPOINT
    return Config.from_dict(load_tree(ckpt)["config"]) if ckpt.exists() else None


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
            rec = back(fake)
            mags = [audio.from_model(t[0, 0].float().cpu(), spec) for t in (x, fake, rec)]
            errors.append(relative_cycle_error(mags[0], mags[2]))
            if i == 0:
                rows.append(list(zip([dom.name, f"{dom.name} → {other}", f"{dom.name} → {other} → {dom.name}"],
                                     [m.numpy() for m in mags])))
        scores[f"val_cycle_{key}"] = float(np.mean(errors))
    return scores, rows


class RunLog:
    """CSV + TensorBoard, appended to on resume."""

    def __init__(self, out: Path):
        path = out / "log.csv"
        # a resumed run keeps the columns its log was started with
        header = None
        if path.exists():
            with open(path) as f:
                first = f.readline().strip()
            header = first.split(",") if first else None
        self.file = open(path, "a", newline="")
        self.csv = csv.DictWriter(self.file, header or LOG_FIELDS, extrasaction="ignore")
        if header is None:
            self.csv.writeheader()
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(out / "tensorboard"))

    def write(self, step: int, values: dict[str, float]) -> None:
        self.csv.writerow({"step": step, **{k: v for k, v in values.items() if k in LOG_FIELDS}})
        self.file.flush()
        for k, v in values.items():
            if k not in ("step", "seconds"):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def _fingerprint(model: CycleGAN) -> str:
    h = hashlib.sha256()
    for t in list(model.gens.state_dict().values()) + list(model.discs.state_dict().values()):
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _out_of_time(limit: float | None, start: float, world: int, device: torch.device) -> bool:
    """Every rank must stop at the same step (a rank that stopped alone would hang the others
    in their next collective), so under DDP the ranks decide together."""
    if limit is None:
        return False
    late = time.time() - start >= limit
    if world == 1:  # no collective, and no device sync in every step
        return late
    flag = torch.tensor(float(late), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def fit(cfg: Config, opts: RunOptions) -> CycleGAN:
    device, rank, world = _setup_distributed(opts.device)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    dom_a = load_domain(opts.domain_a, cfg.name_a, cfg.spec, t, opts.cache_dir, rank, world)
    dom_b = load_domain(opts.domain_b, cfg.name_b, cfg.spec, t, opts.cache_dir, rank, world)
    model = CycleGAN(cfg, device, rank, ddp=world > 1)
    samplers = {k: CropSampler(d.train, t.crop_frames, t.seed * 7919 + rank * 2 + i)
                for i, (k, d) in enumerate((("a", dom_a), ("b", dom_b)))}
    ckpt = out / CHECKPOINT
    if opts.resume and ckpt.exists():
        rng = model.load(ckpt)
        for k, s in samplers.items():
            s.rng.set_state(rng[f"sampler_{k}"])
        if rank == 0:
            print(f"resuming from step {model.step_count} ({ckpt})")
    else:
        if opts.resume and rank == 0:
            print(f"no checkpoint in {out}; starting from step 0")
        if opts.init_from:
            model.gens.load_state_dict(weights.load(opts.init_from)[1].state_dict())
            if rank == 0:
                print(f"generators from {opts.init_from}; discriminators and optimisers start fresh")
    if opts.compile:
        model.compile()

    def save() -> None:
        if rank == 0:
            model.save(ckpt, {f"sampler_{k}": s.rng.get_state() for k, s in samplers.items()})
            cfg.save(out / "config.json")

    log = RunLog(out) if rank == 0 else None
    stop = min(t.steps, opts.until) if opts.until is not None else t.steps
    bar = tqdm(total=t.steps, initial=model.step_count, disable=rank != 0, dynamic_ncols=True)
    start = time.time()
    try:
        while model.step_count < stop:
            a = samplers["a"].sample(t.batch_size).to(device)
            b = samplers["b"].sample(t.batch_size).to(device)
            res = model.step(a, b)
            step = model.step_count
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in res.losses.items()})
            if log and (step % 10 == 0 or step == stop):
                log.write(step, {"seconds": round(time.time() - start, 1), "lr": model.lr_at(step - 1), **res.losses})
            if log and (step % t.val_every == 0 or step == t.steps):
                scores, rows = validate(model, dom_a, dom_b)
                log.write(step, scores)
                plots.save(plots.grid(rows, cfg.spec), out / "samples" / f"step_{step:07d}.png")
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            if step % t.save_every == 0:
                save()
            if rank == 0 and opts.snapshot_every and step % opts.snapshot_every == 0:
                weights.export(out / "snapshots" / f"step_{step:07d}", model.gens, cfg)
            if _out_of_time(opts.time_limit, start, world, device):
                bar.write(f"time limit reached at step {step}; continue with --resume")
                break
    except KeyboardInterrupt:
        bar.write(f"interrupted at step {model.step_count}; saving a checkpoint to resume from")
        save()
        raise
    finally:
        bar.close()
        if log:
            log.close()
    save()
    _finish(model, cfg, opts, out, rank, world)
    return model


def _finish(model: CycleGAN, cfg: Config, opts: RunOptions, out: Path, rank: int, world: int) -> None:
    if world > 1:  # every rank must hold the same weights; record what each one has
        prints: list[str | None] = [None] * world
        dist.all_gather_object(prints, _fingerprint(model))
        if rank == 0:
            (out / "ranks.json").write_text(json.dumps({"world": world, "fingerprints": prints}))
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0 and opts.export and model.step_count >= cfg.train.steps:
        dest = weights.export(Path(opts.weights_root) / opts.export, model.gens, cfg)
        print(f"exported {dest}")
