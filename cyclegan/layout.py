"""The rendered corpus's folders as evaluation sets: which clips, pairs and real references each holds.

A domain's clips are DATA/<name> and, where present, DATA/<name>-driven (driven guitars, scored
apart); pairs are DATA/paired/<folder>/ files of the same name, one per instrument or tone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .data import list_audio, split
from .store import repo_relative

# folder -> recording space; the real-piano sets pair the held-out family's guitars with a recorded
# grand, the real-guitar sets that grand with a recorded electric guitar (cyclegan/sampler.py)
EVAL_SETS = {"heldout-family": "studio", "heldout-recorded": "laptop",
             "real-piano": "studio", "real-piano-recorded": "laptop",
             "real-guitar": "studio", "real-guitar-recorded": "laptop"}
RECORDED = {"real-piano": ("piano",), "real-piano-recorded": ("piano",),  # set -> its recorded instruments
            "real-guitar": ("piano", "guitar"), "real-guitar-recorded": ("piano", "guitar")}
GROUPS = {"": "clean/jazz", "-driven": "overdriven/distorted"}  # folder suffix -> input group


@dataclass
class EvalSet:
    name: str
    clips: dict[str, list[tuple[Path, str]]]  # source domain -> (file, input group)
    pairs: list[dict[str, Path]]  # folder name ("piano", "guitar", "guitar-driven") -> file
    references: dict[str, list[Path]]  # folder name -> real clips (for the Fréchet distance)
    description: str


def domain_files(root: Path, domain: str) -> list[Path]:
    """Every clip of an instrument under `root`: for a guitar the clean and the driven ones
    (the driven clips' clean twins repeat their notes, so they are left out)."""
    folders = [Path(root) / f"{domain}{suffix}" for suffix in GROUPS]
    return sorted(p for f in folders if f == folders[0] or f.is_dir() for p in list_audio(f))  # the first must exist


def _folders(root: Path, names: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(domain, folder name, input group) of every clip folder there is; each domain needs its own."""
    for n in names:
        if not (root / n).is_dir():
            raise FileNotFoundError(f"no such folder: {root / n}")
    return [(n, f"{n}{s}", g) for n in names for s, g in GROUPS.items() if (root / f"{n}{s}").is_dir()]


def pairs(root: Path, limit: int | None = None) -> list[dict[str, Path]]:
    """ROOT/paired/*/ files of one name, grouped: {folder name: file}, at least two per group."""
    folder = root / "paired"
    if not folder.is_dir():
        return []
    by_name: dict[str, dict[str, Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for p in list_audio(sub):
            by_name.setdefault(p.name, {})[sub.name] = p
    return [v for _, v in sorted(by_name.items()) if len(v) > 1][:limit]


def _make(root: Path, name: str, names: tuple[str, ...], pick, limit: int | None, how: str) -> EvalSet:
    clips: dict[str, list[tuple[Path, str]]] = {n: [] for n in names}
    refs: dict[str, list[Path]] = {}
    for domain, folder, group in _folders(root, names):
        files = pick(list_audio(root / folder))[:limit]
        clips[domain] += [(p, group) for p in files]
        refs[folder] = files
    found = pairs(root, limit)
    counts = ", ".join(f"{len(v)} {k}" for k, v in refs.items())
    return EvalSet(name, clips, found, refs, f"{how} ({counts}); {len(found)} note-identical groups in paired/")


def corpus_set(data: Path, names: tuple[str, ...], cfg: TrainConfig, limit: int | None) -> EvalSet:
    """The training corpus's own held-out split: the CycleGAN's validation files of each folder."""
    return _make(Path(data), "validation", names, lambda f: split(f, cfg)[1], limit,
                 f"the CycleGAN's validation split of {repo_relative(data)}")


def named_set(data: Path, name: str, names: tuple[str, ...], limit: int | None) -> EvalSet:
    """Every clip of DATA/NAME (at most `limit` per folder); a missing folder is an error."""
    return _make(Path(data) / name, name, names, lambda f: f, limit, f"every clip of {repo_relative(Path(data) / name)}")


def held_out_sets(data: Path, names: tuple[str, ...], limit: int | None) -> list[EvalSet]:
    """Every held-out set beside the training folders, all of its clips."""
    return [named_set(data, s, names, limit) for s in EVAL_SETS if all((Path(data) / s / n).is_dir() for n in names)]
