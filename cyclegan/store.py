"""Atomic files and pickle-free storage of nested training state.

Checkpoints and weights are safetensors: tensors in the body, everything else
(optimiser hyper-parameters, step counters, names) as JSON in the metadata.
Nothing a user loads can execute code.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save

REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_relative(path: Path) -> str:
    """Repository-relative where possible, so files we ship record no machine's layout."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`.

    A crash at any point leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def save_tree(path: Path, tree: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(tree, tensors, "t")
    atomic_write_bytes(path, st_save(tensors, metadata={"tree": json.dumps(skeleton)}))


def load_tree(path: Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as f:
        skeleton = json.loads(f.metadata()["tree"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _unflatten(skeleton, tensors)
