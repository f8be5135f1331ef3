"""What a stream is asked to play, as plain data: no torch, so the web tier and the room rules
can build, validate and store it cheaply.

A :class:`Steering` is what a room's vote (or a song request) resolves to: several prompts with
weights, plus :class:`Controls` that votes can nudge directly: tempo, energy, brightness, key and
mode, section (``drop``) and instruments in or out. Every control is optional; unset means "let
the model choose". generation/lm/conditioning.py turns a Steering into the model's condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
BPM_RANGE = (40.0, 220.0)
_ENHARMONIC = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "B#": "C"}


def canonical_key(name: str) -> str:
    """A tonic's name as KEYS spells it (enharmonic spellings accepted): "Db" -> "C#"."""
    return _ENHARMONIC.get(name, name)


@dataclass(frozen=True)
class Controls:
    """Structured controls; None (or empty) means "unspecified: let the model choose"."""

    bpm: float | None = None
    energy: float | None = None  # 0 (sparse, quiet) .. 1 (dense, full)
    brightness: float | None = None  # 0 (dark) .. 1 (bright), from the spectral centroid
    key: str | None = None  # tonic, e.g. "F#"
    mode: str | None = None  # "major" | "minor"
    section: str | None = None  # e.g. "intro", "build", "drop", "breakdown", "outro"
    instruments_in: tuple[str, ...] = ()
    instruments_out: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bpm is not None and not BPM_RANGE[0] <= self.bpm <= BPM_RANGE[1]:
            raise ValueError(f"bpm must be within {BPM_RANGE}, got {self.bpm}")
        for name in ("energy", "brightness"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.key is not None and canonical_key(self.key) not in KEYS:
            raise ValueError(f"unknown key {self.key!r}")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def merged(self, other: Controls) -> Controls:
        """These controls with every field that ``other`` sets taken from ``other``."""
        changes = {
            name: getattr(other, name)
            for name in ("bpm", "energy", "brightness", "key", "mode", "section")
            if getattr(other, name) is not None
        }
        if other.instruments_in or other.instruments_out:
            changes["instruments_in"] = other.instruments_in
            changes["instruments_out"] = other.instruments_out
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return {
            "bpm": self.bpm,
            "energy": self.energy,
            "brightness": self.brightness,
            "key": self.key,
            "mode": self.mode,
            "section": self.section,
            "instruments_in": list(self.instruments_in),
            "instruments_out": list(self.instruments_out),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Controls:
        data = dict(data or {})
        data["instruments_in"] = tuple(data.get("instruments_in") or ())
        data["instruments_out"] = tuple(data.get("instruments_out") or ())
        return cls(**data)


@dataclass(frozen=True)
class Steering:
    """A weighted blend of prompts plus controls: the condition of a stream."""

    prompts: tuple[tuple[str, float], ...] = ()
    controls: Controls = field(default_factory=Controls)

    @classmethod
    def of(cls, prompt: str = "", **controls) -> Steering:
        """One prompt (or none) and some controls: ``Steering.of("techno", bpm=128)``."""
        return cls(((prompt, 1.0),) if prompt else (), Controls(**controls))

    def as_dict(self) -> dict:
        return {"prompts": [list(p) for p in self.prompts], "controls": self.controls.as_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Steering:
        prompts = tuple((str(text), float(weight)) for text, weight in data.get("prompts", ()))
        return cls(prompts, Controls.from_dict(data.get("controls", {})))
