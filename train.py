"""Train an unpaired instrument-to-instrument CycleGAN.

    python train.py                                   # piano <-> guitar on the built-in corpus
    python train.py --domain-a DIR --domain-b DIR     # any two folders of audio
    torchrun --nproc_per_node=2 train.py ...          # several processes / GPUs (DDP)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from cyclegan.config import Config, ModelConfig, TrainConfig
from cyclegan.store import REPO_ROOT

# Defaults live in the repository, wherever it is run from; a path the user gives is
# relative to the working directory, as everywhere else on the command line.
DEFAULT_CORPUS = REPO_ROOT / "data" / "corpus"
DEFAULT_OUT = REPO_ROOT / "runs" / "piano_guitar"
DEFAULT_CACHE = REPO_ROOT / "data" / "spec-cache"
DEFAULT_WEIGHTS = REPO_ROOT / "weights"

# flag -> (config section, field, help); defaults come from the dataclasses
TUNABLE = {
    "steps": ("train", "total optimisation steps (a resumed run stops at the same total)"),
    "batch_size": ("train", "clips per step and domain"),
    "lr": ("train", "Adam learning rate"),
    "crop_frames": ("train", "time frames per training crop"),
    "lambda_cycle": ("train", "weight of the two cycle-consistency losses"),
    "cycle_loss": ("train", "what the cycle loss compares: 'log' (dB), 'linear' or 'cbrt' (magnitudes)"),
    "lambda_identity": ("train", "weight of the identity losses (0 turns them off)"),
    "d_warmup": ("train", "first N steps train only the discriminators (for --init-from)"),
    "pool_size": ("train", "fakes kept in each history pool"),
    "twin_fraction": ("train", "share of the B->A generator's inputs drawn from --b-twins"),
    "eq_db": ("train", "random EQ on every crop: up to +-N dB at six log-spaced frequencies (0: off)"),
    "seed": ("train", "seed for initialisation, the validation split and sampling"),
    "val_every": ("train", "validate (metrics, PNG grid) every N steps"),
    "save_every": ("train", "write a checkpoint every N steps"),
    "val_files": ("train", "at most this many held-out files per domain"),
    "arch": ("model", "generator: '212' (fast 2-1-2D) or 'resnet' (original 2-D CycleGAN)"),
    "ngf": ("model", "generator filters in the first layer"),
    "n_blocks": ("model", "residual blocks in the bottleneck"),
    "long_blocks": ("model", "more bottleneck blocks, dilated 2, 4, 8, ...: a longer reach in time (arch 212; "
                             "with --init-from they are added as the identity)"),
    "n_down": ("model", "stride-2 down-sampling layers"),
    "bottleneck": ("model", "channels of the 1-D bottleneck (arch 212)"),
    "upsample": ("model", "decoder up-sampling: 'nearest' (+conv) or 'transpose'"),
    "ndf": ("model", "discriminator filters in the first layer"),
    "d_layers": ("model", "strided discriminator layers (3: the 70x70 PatchGAN; 4: 142x142)"),
}

MODEL_FLAGS = {name for name, (section, _) in TUNABLE.items() if section == "model"}
# with --init-from, discriminators that do not fit start fresh and new long blocks as the identity: these may change
FRESH_WITH_INIT = ("ndf", "d_layers", "long_blocks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--domain-a", type=Path, help="folder of domain A audio (default: the built-in corpus's piano)")
    data.add_argument("--domain-b", type=Path, help="folder of domain B audio (default: the built-in corpus's guitar)")
    data.add_argument("--name-a", help="name of domain A (default: the folder's name)")
    data.add_argument("--name-b", help="name of domain B (default: the folder's name)")
    data.add_argument("--b-twins", nargs=2, type=Path, metavar=("INPUTS", "TARGETS"), action="append",
                      help="extra inputs for the B->A generator, each cycled back to the same-named file of "
                           "TARGETS, not to itself (repeatable; the built-in corpus: driven guitars and their "
                           "clean twins)")
    data.add_argument("--other-guitars", action="store_true",
                      help="with the built-in corpus, also feed the B->A generator its other guitars "
                           "(guitar-other/: nylon, steel, muted, a plucked-string model), twinned likewise")
    data.add_argument("--corpus-minutes", type=float, default=40.0, help="minutes per instrument of the built-in corpus")
    data.add_argument("--soundfont", type=Path, action="append", default=[],
                      help="extra General-MIDI SoundFont for the built-in corpus (repeatable)")
    data.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                      help=f"spectrogram cache (default {DEFAULT_CACHE.relative_to(REPO_ROOT)}/ in the repository)")
    hp = p.add_argument_group("model and schedule")
    defaults = {**{f.name: f.default for f in fields(TrainConfig)}, **{f.name: f.default for f in fields(ModelConfig)}}
    for name, (_, text) in TUNABLE.items():
        d = defaults[name]
        hp.add_argument("--" + name.replace("_", "-"), type=type(d), default=None, help=f"{text} (default {d})")
    hp.add_argument("--lr-decay", action=argparse.BooleanOptionalAction, default=None,
                    help="decay the learning rate linearly to 0 over the second half of --steps (default on; "
                         "on --resume, the checkpoint's setting unless given)")
    run = p.add_argument_group("run")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoints, logs and samples "
                     f"(default {DEFAULT_OUT.relative_to(REPO_ROOT)}/ in the repository)")
    run.add_argument("--resume", action="store_true",
                     help="continue from the newest good checkpoint in --out (--steps, --lr-decay and the "
                          "loss weights may change; the model, the seed and the data may not)")
    run.add_argument("--allow-data-change", action="store_true",
                     help="let --resume go on with another --seed, validation split or data folders: the "
                          "crops drawn (and the validation split) then differ from the run's own")
    run.add_argument("--keep", type=int, default=3, metavar="K",
                     help="keep the K newest checkpoints; a damaged newest one falls back to an older (default 3)")
    run.add_argument("--init-from", type=Path, metavar="MODEL_DIR",
                     help="start from an exported model's generators (e.g. weights/piano_guitar), to fine-tune "
                          "it with other losses or data; its spectrogram and generator settings are kept, and its "
                          "discriminators where it has them and they fit --ndf/--d-layers (else they start fresh; "
                          "--ndf, --d-layers and --long-blocks may change)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the models: faster steps after minutes of compiling (cached for "
                          "later runs; bench/train_speed.py measures both); for long runs")
    run.add_argument("--time-limit", type=float, metavar="MINUTES",
                     help="stop after this much wall time, with a checkpoint to --resume from")
    run.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                     help="also export the generators every N steps to OUT/snapshots/step_N/ (each loads "
                          "like weights/NAME/), to pick the best step afterwards")
    run.add_argument("--export", metavar="NAME", help="at the end, write WEIGHTS_ROOT/NAME/ for the app and CLI")
    run.add_argument("--weights-root", type=Path, default=DEFAULT_WEIGHTS,
                     help="where --export writes (default weights/ in the repository)")
    args = p.parse_args(argv)
    if args.keep < 1:
        p.error("--keep must be at least 1")
    return args


def build_config(args: argparse.Namespace) -> Config:
    """Flags over defaults; on --resume, flags over the checkpoint's config (schedule and loss
    weights may change, e.g. to drop the identity loss late in training; the model may not)."""
    from cyclegan.fit import saved_config

    saved = saved_config(args.out) if args.resume else None
    cfg = saved or Config(name_a=args.name_a or args.domain_a.name, name_b=args.name_b or args.domain_b.name)
    fixed, why = (MODEL_FLAGS, "when resuming") if saved else (set(), "")
    if args.init_from and not saved:
        from cyclegan.weights import read_config

        try:
            start = read_config(args.init_from)
        except (OSError, ValueError) as e:
            sys.exit(f"error: --init-from {args.init_from}: no exported model there ({e})")
        cfg.spec, cfg.model = start.spec, start.model
        fixed, why = MODEL_FLAGS - set(FRESH_WITH_INIT), "with --init-from"
    for name, (section, _) in TUNABLE.items():
        value = getattr(args, name)
        if value is None or value == getattr(getattr(cfg, section), name):
            continue
        if name in fixed:
            sys.exit(f"error: --{name.replace('_', '-')} cannot change {why}; the model "
                     f"has {name}={getattr(cfg.model, name)}")
        setattr(getattr(cfg, section), name, value)
    if args.lr_decay is not None:
        cfg.train.lr_decay = args.lr_decay
    return cfg


def default_corpus(args: argparse.Namespace) -> None:
    """No folders given: render (once) and use the built-in piano/guitar corpus (its clean guitars;
    the held-out family and its folders are for the evaluation only)."""
    try:
        from cyclegan.corpus import CorpusError, ensure_corpus, installed_soundfonts
    except ImportError as e:
        sys.exit(f"the built-in corpus is unavailable ({e}); pass --domain-a DIR --domain-b DIR")
    try:
        root = ensure_corpus(DEFAULT_CORPUS, minutes=args.corpus_minutes,
                             soundfonts=installed_soundfonts() + list(args.soundfont))
    except CorpusError as e:
        sys.exit(f"error: {e}")
    args.domain_a, args.domain_b = root / "piano", root / "guitar"
    if args.b_twins is None:
        args.b_twins = [(root / "guitar-driven", root / "guitar-driven-clean")]
    if args.other_guitars:
        args.b_twins.append((root / "guitar-other", root / "guitar-other-clean"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if (args.domain_a is None) != (args.domain_b is None):
        sys.exit("error: pass both --domain-a and --domain-b, or neither (to train on the built-in corpus)")
    if args.other_guitars and args.domain_a is not None:
        sys.exit("error: --other-guitars adds the built-in corpus's guitar-other/; with your own folders, "
                 "pass --b-twins INPUTS TARGETS instead")
    if args.domain_a is None:
        default_corpus(args)
    from cyclegan.data import DataError
    from cyclegan.fit import Interrupted, RunError, RunOptions, fit
    from cyclegan.store import DamagedFile, StorageError

    opts = RunOptions(args.domain_a, args.domain_b, args.out, args.device, args.resume, args.export,
                      args.weights_root, args.cache_dir, args.compile,
                      time_limit=args.time_limit * 60 if args.time_limit is not None else None,
                      snapshot_every=args.snapshot_every, init_from=args.init_from, keep=args.keep,
                      allow_data_change=args.allow_data_change,
                      twins_b=tuple(map(tuple, args.b_twins)) if args.b_twins else None)
    speaks = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks for every rank
    try:
        fit(build_config(args), opts)
    except Interrupted as e:
        sys.exit(str(e) if speaks else 1)
    except (DataError, RunError, StorageError, DamagedFile) as e:
        sys.exit(f"error: {e}" if speaks else 1)


if __name__ == "__main__":
    main()
