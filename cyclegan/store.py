"""Atomic files and pickle-free storage of nested training state.

Checkpoints and weights are safetensors: tensors in the body, everything else
(optimiser hyper-parameters, step counters, names) as JSON in the metadata.
Nothing a user loads can execute code.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save

REPO_ROOT = Path(__file__).resolve().parent.parent


class DamagedFile(ValueError):
    """A stored file that cannot be trusted: truncated, overwritten, or failing its checksum."""


class StorageError(OSError):
    """A folder that cannot take what the run must write; the message says what to do."""


def repo_relative(path: Path) -> str:
    """Repository-relative where possible, so files we ship record no machine's layout. A folder
    inside the repository that links elsewhere (data/corpus -> a shared disk) is named as given."""
    given, real = Path(os.path.normpath(Path(path).absolute())), Path(path).resolve()
    for p in (given, real):
        if p.is_relative_to(REPO_ROOT):
            return str(p.relative_to(REPO_ROOT))
    return str(real)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`.

    A crash at any point leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the pid in the name tells a later run whether the writer is still alive (see remove_orphans)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide shipped weights from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def require_files(folder: Path, names: tuple[str, ...], hint: str) -> None:
    """A model folder is usable only with all of its files; say which one is missing and how to make it."""
    for name in names:
        if not (Path(folder) / name).is_file():
            raise FileNotFoundError(f"{Path(folder) / name} is missing; {hint}")


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """A flat state dict as safetensors (float32 kept as is), written atomically."""
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(data, metadata=metadata))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Replace every tensor in a nested structure by a reference into `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        # a list of pairs keeps non-string keys (optimiser state uses ints)
        return {"__dict__": [[k, _flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def _digest(skeleton: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the JSON skeleton and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(skeleton.encode())
    for k in sorted(tensors):
        t = tensors[k]
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def save_tree(path: Path, tree: dict[str, Any]) -> None:
    """A nested structure as safetensors, with a checksum that `read_tree` verifies."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_flatten(tree, tensors, "t"))
    meta = {"tree": skeleton, "sha256": _digest(skeleton, tensors)}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def read_tree(path: Path) -> tuple[dict[str, Any], bool]:
    """(the tree, whether it carried a checksum); a damaged file raises DamagedFile.

    Files written before checksums existed load unverified."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        skeleton = meta["tree"]
        tree = _unflatten(json.loads(skeleton), tensors)
    except Exception as e:  # safetensors, JSON and a missing tree all mean the same: unusable
        raise DamagedFile(f"{path} is damaged ({type(e).__name__}: {str(e)[:80]})") from None
    if "sha256" in meta and meta["sha256"] != _digest(skeleton, tensors):
        raise DamagedFile(f"{path} is damaged (its tensors do not match their checksum)")
    return tree, "sha256" in meta


def load_tree(path: Path) -> dict[str, Any]:
    return read_tree(path)[0]


def versions(folder: Path, name: str) -> list[tuple[int, Path]]:
    """Numbered versions NAME_0000012.EXT of a file, newest first; a plain NAME.EXT (from
    before numbering) comes last, as version -1."""
    stem, ext = name.split(".", 1)
    found = []
    for p in Path(folder).glob(f"{stem}_*.{ext}"):
        num = p.name[len(stem) + 1:-len(ext) - 1]
        if num.isdigit():
            found.append((int(num), p))
    if (Path(folder) / name).is_file():
        found.append((-1, Path(folder) / name))
    return sorted(found, reverse=True)


def version_path(folder: Path, name: str, number: int) -> Path:
    stem, ext = name.split(".", 1)
    return Path(folder) / f"{stem}_{number:07d}.{ext}"


def prune_versions(folder: Path, name: str, keep: int) -> list[Path]:
    """Delete all but the `keep` newest versions; returns what was deleted."""
    old = [p for _, p in versions(folder, name)[max(1, keep):]]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(folder: Path) -> list[Path]:
    """Delete temp files left by a writer that died (a kill during a write).

    A temp file names its writer's pid; one whose writer still runs (another rank, another
    run sharing a cache) is left alone, and one without a pid predates this rule."""
    removed = []
    for p in Path(folder).glob("*.tmp") if Path(folder).is_dir() else []:
        m = re.search(r"\.(\d+)(\.[^.]+)?\.tmp$", p.name)
        if m is None or not _alive(int(m.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def check_writable(folder: Path, what: str, need_bytes: int = 0) -> None:
    """Fail before any work if `folder` cannot take a file of `need_bytes`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise StorageError(f"cannot write the {what} to {folder} ({e.strerror or e}): "
                           "choose another folder or fix its permissions") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise StorageError(f"{folder} has {free / 1e6:.1f} MB free, but the {what} need about "
                           f"{need_bytes / 1e6:.1f} MB: free some space or choose another folder")


def write_failure(e: OSError, what: str, fallback: str) -> StorageError:
    """One sentence for a write that failed mid-run: what failed, why, and what still stands."""
    return StorageError(f"could not write {what} ({e.strerror or e}); {fallback}")
