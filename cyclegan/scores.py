"""The app's scores panel: each model's own evaluation (its evaluation.json) as one table row.

Serving code: it reads the files `python -m cyclegan.evaluate --update-model` wrote.
"""
from __future__ import annotations

import json

from . import weights


def _unseen(sets: dict, direction: str) -> float | None:
    """The direction's transfer through a laptop mic on what training never heard: a recorded grand
    and a recorded electric guitar (what a visitor plays), else the held-out sample family. Counted
    on the inputs the judge knew untranslated, where given: one it already mishears is no success."""
    for name in ("real-guitar-recorded", "heldout-recorded"):
        if found := sets.get(name, {}).get("directions", {}).get(direction):
            known = sets[name].get("transfer_on_known", {}).get(direction) or {}
            return found["model"]["transfer_accuracy"] if known.get("accuracy") is None else known["accuracy"]
    return None


def scores_markdown(directions: list[weights.Direction]) -> str:
    """Each model's scores (its evaluation.json), validation and unseen samples through a laptop-like
    recording, so a visitor knows what to expect; "" when no model has been evaluated."""
    rows = []
    for d in directions:
        try:
            r = (result := json.loads((d.model_dir / "evaluation.json").read_text()))["directions"][d.value]
        except (OSError, ValueError, KeyError):
            continue
        m, ident, eq = r["model"], r["identity"]["paired_lsd_db"], r["eq"]["paired_lsd_db"]
        laptop = _unseen(result.get("sets", {}), d.value)
        unseen = f"{laptop:.0%}" if laptop is not None else "n/a"
        # a pair trained on the user's own folders usually has no paired set to measure against
        dist = (f"{m['paired_lsd_db']:.1f} dB (untouched input {ident:.1f}, fixed EQ {eq:.1f})"
                if None not in (m["paired_lsd_db"], ident, eq) else "n/a (no paired clips)")
        rows.append(f"| {d.label} | {m['transfer_accuracy']:.0%} | {unseen} | {m['chroma']:.2f} | {dist} |")
    if not rows:
        return ""
    return ("| direction | heard as the target instrument | the same, instruments it never heard, laptop mic "
            "| notes kept (chroma, 0–1) | distance to the real instrument, lower is better |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\nOn held-out clips of the synthetic SoundFont corpus it was trained on, "
            "and through a laptop-like room, mic and codec on instruments it never heard (a recorded grand "
            "piano and a recorded electric guitar), judged by a separate instrument classifier (`python -m "
            "cyclegan.evaluate`); there, only inputs the classifier recognises untranslated count. Training, "
            "data and limits: the model card, `weights/<name>/README.md`.")
