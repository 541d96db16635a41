"""Generators and PatchGAN discriminators on (batch, 1, freq, frames) log-magnitudes."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config, ModelConfig


class FrameNorm(nn.Module):
    """Layer norm over channels (and frequency) of each time frame on its own.

    Instance norm would pool statistics over the whole excerpt, so a clip translated in
    chunks would differ from the same clip translated at once, and a 64-frame training crop
    from a 60 s file.  Per-frame statistics make the generator time-local: any chunking gives
    the same output away from the chunk edges.
    """

    def __init__(self, ch: int, eps: float = 1e-5):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(ch)), nn.Parameter(torch.zeros(ch)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # statistics over every axis but batch and time; then one fused scale-and-shift pass
        # (no permuted copy for a library norm: on CPU the copies cost more than the maths)
        b, t = x.shape[0], x.shape[-1]
        flat = x.reshape(b, -1, t)
        mean = flat.mean(1, keepdim=True)  # two plain passes: 3x faster than var_mean's Welford on CPU
        var = (flat - mean).square().mean(1, keepdim=True)
        ones = (1,) * (x.dim() - 2)
        channel, frame = (1, -1, *ones[1:], 1), (b, *ones, t)  # broadcast shapes
        scale = self.weight.view(channel) * torch.rsqrt(var + self.eps).view(frame)
        shift = self.bias.view(channel) - mean.view(frame) * scale
        return torch.addcmul(shift, x, scale)


def _norm2d(ch: int) -> nn.Module:
    return FrameNorm(ch)


def _conv_block(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, padding_mode="reflect"),
                         _norm2d(cout), nn.ReLU(inplace=True))


# Per axis, which of a 3-tap kernel's taps land on each of the 4 taps of the equivalent
# stride-2 transposed conv (see NearestUpConv).
_TIE = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])


def _edge_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices that replicate-pad an axis of length n by `pad` on each side, for an index gather
    (torch.compile mis-strides replication_pad2d's backward)."""
    return torch.arange(-pad, n + pad, device=device).clamp_(0, n - 1)


def _replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the last two axes by one."""
    rows, cols = _edge_index(x.shape[-2], 1, x.device), _edge_index(x.shape[-1], 1, x.device)
    return x[..., rows[:, None], cols]


class NearestUpConv(nn.Sequential):
    """x2 nearest-neighbour up-sampling, then a 3x3 conv with reflection padding, computed exactly
    as ONE stride-2 4x4 transposed conv on the small input with a tied kernel.

    Up-sampling by repetition makes every output pixel a sum over 2x2 input pixels, and
    reflection padding of the repeated image equals replicate padding of the small one, so
    nothing changes but the cost (about 5x less on CPU): no up-sampled copy, no large padded
    copy, a quarter of the multiply-adds.  The children stay (Upsample, Conv2d), so parameter
    names and checkpoints are those of the plain two-step version.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"))  # what forward computes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv: nn.Conv2d = self[1]
        tie = _TIE.to(conv.weight)
        kernel = torch.einsum("ai,ocij,bj->coab", tie, conv.weight, tie)  # (cin, cout, 4, 4)
        return F.conv_transpose2d(_replicate_pad1(x), kernel, conv.bias, stride=2, padding=3)


class ChannelSumConv(nn.Conv2d):
    """A k x k conv to ONE output channel with reflection padding; at inference computed as a
    depthwise conv plus a channel sum: the same numbers, but oneDNN's depthwise forward is
    about 5x faster on CPU than its kernel for a single output channel.  (Its depthwise
    backward is slower, so training keeps the plain conv.)"""

    def __init__(self, cin: int, k: int):
        super().__init__(cin, 1, k, padding=k // 2, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # channels-last: oneDNN's forward + backward ~30% faster here
            return super().forward(x.contiguous(memory_format=torch.channels_last))
        p = self.kernel_size[0] // 2
        y = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), self.weight.transpose(0, 1), groups=self.in_channels)
        return y.sum(1, keepdim=True) + self.bias.view(1, 1, 1, 1)


class TimeConv(nn.Conv1d):
    """A 1-D conv over time with reflection padding, computed as ONE matrix product of the
    weight with the k shifted copies of the input: the same numbers as nn.Conv1d, but on the
    bottleneck's few frames oneDNN's conv is overhead-bound and a plain GEMM is ~25% faster
    (forward + backward).  Parameters are nn.Conv1d's, so checkpoints do not change.
    A dilated one pads by an index gather that reflects, then repeats the edge, so a clip
    shorter than the dilation still works (plain reflection needs pad < frames)."""

    def __init__(self, cin: int, cout: int, k: int = 1, dilation: int = 1):
        super().__init__(cin, cout, k, padding=k // 2 * dilation, dilation=dilation, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, d, t = self.kernel_size[0], self.dilation[0], x.shape[-1]
        if k > 1:  # (B, C, T) -> (B, C*k, T), ordered like the weight's (C, k) axes
            p = k // 2 * d
            if d == 1:
                padded = F.pad(x, (p, p), mode="reflect")
            else:
                i = torch.arange(-p, t + p, device=x.device).abs()
                padded = x[..., ((t - 1) - ((t - 1) - i).abs()).clamp(0, t - 1)]
            x = torch.stack([padded[..., j * d:j * d + t] for j in range(k)], 2).flatten(1, 2)
        return torch.matmul(self.weight.flatten(1), x) + self.bias[:, None]


def _up_block(cin: int, cout: int, mode: str) -> nn.Sequential:
    if mode == "transpose":
        up: nn.Module = nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1)
    else:
        up = NearestUpConv(cin, cout)
    return nn.Sequential(up, _norm2d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """zero_init: the last norm's scale starts at 0, so the block starts as the identity (a block
    added to a trained generator leaves it unchanged until it learns)."""

    def __init__(self, ch: int, dims: int, dilation: int = 1, zero_init: bool = False):
        super().__init__()
        def conv() -> nn.Module:
            return TimeConv(ch, ch, 3, dilation) if dims == 1 else nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")

        self.body = nn.Sequential(conv(), FrameNorm(ch), nn.ReLU(inplace=True), conv(), FrameNorm(ch))
        if zero_init:
            nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Bottleneck1d(nn.Module):
    """Fold frequency into channels and run residual blocks along time only.

    Timbre is a pattern across the whole spectrum, so a 1-D conv that sees every
    bin at once gets a full-band receptive field at a fraction of a 2-D conv's cost.
    `long_blocks` more blocks, dilated 2, 4, 8, ..., widen the reach in time at the same cost:
    the middle of a held note then hears its onset (a piano's decay starts there).
    """

    def __init__(self, ch: int, freq: int, width: int, n_blocks: int, long_blocks: int = 0):
        super().__init__()
        self.inp = nn.Sequential(TimeConv(ch * freq, width), FrameNorm(width))
        self.blocks = nn.Sequential(*[ResBlock(width, dims=1) for _ in range(n_blocks)],
                                    *[ResBlock(width, 1, 2 ** (i + 1), zero_init=True) for i in range(long_blocks)])
        self.out = nn.Sequential(TimeConv(width, ch * freq), FrameNorm(ch * freq), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        y = self.out(self.blocks(self.inp(x.reshape(b, c * f, t))))
        return y.reshape(b, c, f, t)


class Generator(nn.Module):
    """Strided-conv encoder, residual bottleneck, up-sampling decoder, tanh output."""

    def __init__(self, cfg: ModelConfig, n_freq: int):
        super().__init__()
        self.factor = 2 ** cfg.n_down
        if n_freq % self.factor:
            raise ValueError(f"n_freq={n_freq} must be divisible by 2**n_down={self.factor}")
        chs = [cfg.ngf * 2 ** i for i in range(cfg.n_down + 1)]
        enc = [_conv_block(1, chs[0], 7)] + [_conv_block(chs[i], chs[i + 1], 3, 2) for i in range(cfg.n_down)]
        if cfg.arch == "212":
            mid: nn.Module = Bottleneck1d(chs[-1], n_freq // self.factor, cfg.bottleneck, cfg.n_blocks,
                                          cfg.long_blocks)
        elif cfg.arch == "resnet":
            mid = nn.Sequential(*[ResBlock(chs[-1], dims=2) for _ in range(cfg.n_blocks)])
        else:
            raise ValueError(f"unknown generator arch {cfg.arch!r} (use '212' or 'resnet')")
        dec = [_up_block(chs[i + 1], chs[i], cfg.upsample) for i in reversed(range(cfg.n_down))]
        head = ChannelSumConv(chs[0], 7)
        self.net = nn.Sequential(*enc, mid, *dec, head)
        self.skip = cfg.skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Any number of frames: pad time to a multiple of the down-sampling factor, crop back.

        At least two bottleneck frames, so instance norm and reflection padding are defined.
        """
        frames = x.shape[-1]
        # always padded (by 0 too), with sym_max: one traced graph then serves every length (ONNX);
        # replicate (reflect needs pad < frames) as an index gather, as in _replicate_pad1
        pad = torch.sym_max(-frames % self.factor, 2 * self.factor - frames)
        x = x[..., torch.arange(frames + pad, device=x.device).clamp_(max=frames - 1)]
        h = self.net(x)[..., :frames]
        if self.skip:  # learn a change to the input (in tanh-logit space), not the whole spectrogram
            h = h + torch.atanh(x[..., :frames].clamp(-0.999, 0.999))
        return torch.tanh(h)


class Discriminator(nn.Module):
    """PatchGAN: C64-C128-C256 (stride 2), C512 (stride 1), 1-channel map; 70x70 receptive field at 3 layers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, cfg.ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = cfg.ndf
        for i in range(1, cfg.d_layers + 1):
            nxt = cfg.ndf * 2 ** min(i, 3)
            stride = 2 if i < cfg.d_layers else 1
            layers += [nn.Conv2d(ch, nxt, 4, stride, 1), nn.InstanceNorm2d(nxt, affine=True), nn.LeakyReLU(0.2, True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Generators(nn.Module):
    """Both generators behind one forward, so DDP sees a single forward/backward per step."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.a2b = Generator(cfg.model, cfg.spec.n_freq)
        self.b2a = Generator(cfg.model, cfg.spec.n_freq)

    def forward(self, a: torch.Tensor, b: torch.Tensor, identity: bool = True,
                b_in: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`b_in`: what the B->A generator translates when it differs from `b`, the cycle's target
        (a driven guitar whose clean twin is `b`)."""
        n = a.shape[0]
        b_in = b if b_in is None else b_in
        # batching real and identity inputs halves the number of (overhead-bound) calls on CPU
        ab = self.a2b(torch.cat([a, b]) if identity else a)
        ba = self.b2a(torch.cat([b_in, a]) if identity else b_in)
        out = {"fake_b": ab[:n], "fake_a": ba[:n]}
        if identity:
            out.update(idt_b=ab[n:], idt_a=ba[n:])
        out["rec_a"] = self.b2a(out["fake_b"])
        out["rec_b"] = self.a2b(out["fake_a"])
        return out


class Discriminators(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.a = Discriminator(cfg.model)
        self.b = Discriminator(cfg.model)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(a), self.b(b)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """N(0, 0.02) convolutions, as in pix2pix/CycleGAN."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def reach_bound(cfg: ModelConfig) -> int:
    """Frames either side that can change a generator's output frame (its receptive field,
    rounded up): encoder and decoder convs, the bottleneck's residual convs at 1/2**n_down."""
    f = 2 ** cfg.n_down
    dilations = [1] * cfg.n_blocks + [2 ** (i + 1) for i in range(cfg.long_blocks if cfg.arch == "212" else 0)]
    return 2 * (f + 2) + f * (2 * sum(dilations) + 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
