"""The CycleGAN objective and one optimisation step, with everything a checkpoint must hold."""
from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import audio
from .config import Config, SpecConfig
from .models import Discriminators, Generators, init_weights


class HistoryPool:
    """Shrivastava et al.'s buffer of earlier fakes: the discriminator sees half old, half new.

    Its own RNG makes the draw reproducible and part of the checkpoint.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.items: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        # a resumed run may use another crop length: older fakes of another shape are dropped
        self.items = [t for t in self.items if t.shape == batch.shape[1:]]
        out = []
        for item in batch.detach():
            if len(self.items) < self.size:
                self.items.append(item.clone())
                out.append(item)
            elif torch.rand((), generator=self.rng) < 0.5:
                i = int(torch.randint(len(self.items), (), generator=self.rng))
                out.append(self.items[i].to(item.device))
                self.items[i] = item.clone()
            else:
                out.append(item)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"items": [t.cpu() for t in self.items], "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.items = [t.to(device) for t in state["items"]]
        self.rng.set_state(state["rng"])


CYCLE_POWERS = {"linear": 1.0, "cbrt": 1 / 3}  # besides "log"


def cycle_distance(rec: torch.Tensor, x: torch.Tensor, kind: str, spec: SpecConfig) -> torch.Tensor:
    """How far a cycle reconstruction is from its input.

    "log": L1 on the model's dB scale, every bin alike.  A quiet piano partial 50 dB down then
    costs as much as the fundamental, so the piano->guitar generator must keep the piano's quiet
    upper partials and hammer noise in its "guitar", or the cycle cannot rebuild them.
    "linear": the report's own metric, mean|rec - x| / mean|x| on linear magnitudes, led by
    the loud bins; "cbrt": the same on cube-root magnitudes, in between.
    """
    if kind == "log":
        return F.l1_loss(rec, x)
    p = CYCLE_POWERS[kind]
    m_rec, m_x = (audio.from_model(t.float(), spec) ** p for t in (rec, x))
    return (m_rec - m_x).abs().mean() / m_x.abs().mean().clamp_min(1e-12)


def _lsgan(pred: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, target))


@dataclass
class StepResult:
    losses: dict[str, float]
    fakes: dict[str, torch.Tensor]


class CycleGAN:
    """Models, optimisers and pools; `step` is one generator update then one discriminator update."""

    def __init__(self, cfg: Config, device: torch.device, rank: int = 0, ddp: bool = False):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        if cfg.train.cycle_loss not in ("log", *CYCLE_POWERS):
            raise ValueError(f"unknown cycle loss {cfg.train.cycle_loss!r}: use 'log', "
                             + ", ".join(repr(k) for k in CYCLE_POWERS))
        self.gens, self.discs = Generators(cfg).to(device), Discriminators(cfg).to(device)
        init_weights(self.gens), init_weights(self.discs)
        if device.type == "cuda":
            self.gens.to(memory_format=torch.channels_last)
            self.discs.to(memory_format=torch.channels_last)
        t = cfg.train
        betas = (t.beta1, t.beta2)
        self.opt_g = torch.optim.Adam(self.gens.parameters(), t.lr, betas=betas, fused=True)
        self.opt_d = torch.optim.Adam(self.discs.parameters(), t.lr, betas=betas, fused=True)
        self.pools = {k: HistoryPool(t.pool_size, t.seed * 1000 + rank * 2 + i) for i, k in enumerate("ab")}
        self.step_count = 0
        # called with the name of each phase of a step; tests inject faults through it
        self.probe: Callable[[str], None] = lambda phase: None
        self.g_train: nn.Module = self.gens
        self.d_train: nn.Module = self.discs
        if ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.g_train, self.d_train = DDP(self.gens, device_ids=ids), DDP(self.discs, device_ids=ids)
        use_amp = device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.amp = use_amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and self.amp_dtype == torch.float16)

    def release_ddp(self) -> None:
        """Drop the DDP wrappers before the process group goes: their reducers hold it (and its gloo
        threads), and a group freed only at interpreter exit can abort the process."""
        self.g_train, self.d_train = self.gens, self.discs
        gc.collect()

    def compile(self) -> None:
        self.g_train = torch.compile(self.g_train)
        self.d_train = torch.compile(self.d_train)

    def lr_at(self, step: int) -> float:
        t = self.cfg.train
        if not t.lr_decay or step < t.steps // 2:
            return t.lr
        return t.lr * max(0.0, 1 - (step - t.steps // 2) / max(1, t.steps - t.steps // 2))

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def step(self, a: torch.Tensor, b: torch.Tensor, b_in: torch.Tensor | None = None) -> StepResult:
        """`b_in`: the B->A generator's inputs where they are not `b` itself (see Generators)."""
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = self.lr_at(self.step_count)
        if self.step_count < self.cfg.train.d_warmup:
            with torch.no_grad(), self._autocast():  # only the fakes: no cycle, no identity
                out = {"fake_b": self.gens.a2b(a), "fake_a": self.gens.b2a(b if b_in is None else b_in)}
            losses = dict.fromkeys(("g_adv", "cycle", "identity"), 0.0)
        else:
            out, losses = self._generator_step(a, b, b_in)
        self.probe("generator")
        losses["d"] = self._discriminator_step(a, b, out["fake_a"].detach(), out["fake_b"].detach())
        self.step_count += 1
        return StepResult(losses, {k: v.detach() for k, v in out.items()})

    def _generator_step(self, a: torch.Tensor, b: torch.Tensor,
                        b_in: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        t = self.cfg.train
        identity = t.lambda_identity > 0
        self.discs.requires_grad_(False)  # the generator step must not move the discriminators
        with self._autocast():
            out = self.g_train(a, b, identity, b_in)
            pred_a, pred_b = self.discs(out["fake_a"], out["fake_b"])
            adv = _lsgan(pred_a, 1.0) + _lsgan(pred_b, 1.0)
            cyc = (cycle_distance(out["rec_a"], a, t.cycle_loss, self.cfg.spec)
                   + cycle_distance(out["rec_b"], b, t.cycle_loss, self.cfg.spec))
            idt = F.l1_loss(out["idt_a"], a) + F.l1_loss(out["idt_b"], b) if identity else adv.new_zeros(())
            loss_g = adv + t.lambda_cycle * cyc + t.lambda_identity * idt
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.discs.requires_grad_(True)
        return out, {"g_adv": adv.item(), "cycle": cyc.item(), "identity": idt.item()}

    def _discriminator_step(self, a: torch.Tensor, b: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor) -> float:
        n = a.shape[0]
        fake_a, fake_b = self.pools["a"].query(fake_a), self.pools["b"].query(fake_b)
        with self._autocast():
            pa, pb = self.d_train(torch.cat([a, fake_a]), torch.cat([b, fake_b]))
            # halved, so the discriminators learn slower than the generators
            loss_d = 0.5 * (_lsgan(pa[:n], 1.0) + _lsgan(pa[n:], 0.0) + _lsgan(pb[:n], 1.0) + _lsgan(pb[n:], 0.0))
        self.probe("discriminator")
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        return loss_d.item()

    # --- checkpoints -------------------------------------------------------------
    # The state every rank shares (weights, optimisers, step) is saved once; what each rank
    # holds alone (its history pools and RNG) is saved per rank, so each gets its own back.

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(), "step": self.step_count,
            "gens": self.gens.state_dict(), "discs": self.discs.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def rank_state(self, extra_rng: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"pools": {k: p.state_dict() for k, p in self.pools.items()},
                "rng": {"torch": torch.get_rng_state(), **extra_rng}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gens.load_state_dict(state["gens"])
        self.discs.load_state_dict(state["discs"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self._match_optimizer_layout()
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step_count = int(state["step"])

    def load_rank_state(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Restores the pools and the global RNG; returns the RNG states (the samplers' too)."""
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k], self.device)
        torch.set_rng_state(state["rng"]["torch"])
        return state["rng"]

    def _match_optimizer_layout(self) -> None:
        """Saved moments are contiguous; fused Adam wants each parameter's own strides
        (channels-last on CUDA), or a resumed run fails at its first step."""
        for opt in (self.opt_g, self.opt_d):
            for p, st in opt.state.items():
                for k, v in st.items():
                    if torch.is_tensor(v) and v.shape == p.shape:
                        st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)

    def finite(self) -> bool:
        """Whether every weight is a number: a diverged model must never replace a good checkpoint."""
        params = [*self.gens.parameters(), *self.discs.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())
