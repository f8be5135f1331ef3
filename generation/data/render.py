"""Playing MIDI through FluidSynth, and the loudness normalisation after it.

Each worker process keeps one :class:`Renderer`, which keeps the soundfont loaded (loading
FluidR3 takes longer than rendering a short piece). Rendering is offline and deterministic: MIDI
events are sent at their sample positions and the synth's audio is pulled in between
(``fluid_synth_write_float``), never through an audio driver, on a fresh synth per piece.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SOUNDFONT_ENV = "CHORUS_SOUNDFONT"

INSTALL_HINT = (
    "The training corpus is rendered with FluidSynth and a General MIDI soundfont. {problem} "
    "On Debian or Ubuntu install both with `apt-get install fluidsynth fluid-soundfont-gm` "
    "(this provides libfluidsynth and the FluidR3 soundfont at {default}); the Python binding "
    "comes with the project's dependencies (`pip install pyfluidsynth`). To use another General "
    "MIDI soundfont, pass --soundfont PATH or set {env}."
)


class FluidSynthUnavailable(RuntimeError):
    """FluidSynth or the soundfont is missing; the message says what to install."""


def resolve_soundfont(path: str | os.PathLike[str] | None = None) -> Path:
    """The soundfont to use: ``path`` if given, else $CHORUS_SOUNDFONT, else FluidR3 GM."""
    if path:
        return Path(path)
    return Path(os.environ.get(SOUNDFONT_ENV) or DEFAULT_SOUNDFONT)


def _explain(problem: str) -> FluidSynthUnavailable:
    return FluidSynthUnavailable(
        INSTALL_HINT.format(problem=problem, default=DEFAULT_SOUNDFONT, env=SOUNDFONT_ENV)
    )


def check_fluidsynth(soundfont: Path) -> None:
    """Raise :class:`FluidSynthUnavailable` unless the soundfont and libfluidsynth are usable."""
    if not soundfont.is_file():
        raise _explain(f"The soundfont {soundfont} was not found.")
    try:
        import fluidsynth  # noqa: F401  (loading the module loads libfluidsynth)
    except ImportError as error:
        raise _explain(f"The FluidSynth library could not be loaded ({error}).") from None
    except OSError as error:
        raise _explain(f"The FluidSynth library could not be loaded ({error}).") from None


@dataclass(frozen=True)
class RenderSettings:
    """How pieces are rendered and levelled."""

    sample_rate: int = 24_000
    gain: float = 0.4
    tail_s: float = 1.5
    target_lufs: float = -18.0
    peak_dbfs: float = -1.0


class Renderer:
    """Renders MIDI files to mono audio with FluidSynth, keeping the soundfont loaded.

    Loading FluidR3 takes about half a second; a synth created while another one already holds
    the soundfont reuses its samples (FluidSynth's sample cache) and costs about 50 ms. So the
    renderer keeps one synth alive for its whole life, only to hold the soundfont, and plays
    every piece on a fresh synth: a piece then renders bit for bit the same whatever was rendered
    before it, in whichever worker (a reused synth keeps effect and voice state between pieces).
    """

    def __init__(self, soundfont: Path, settings: RenderSettings | None = None) -> None:
        check_fluidsynth(soundfont)
        import fluidsynth

        self.settings = settings or RenderSettings()
        self._fluidsynth = fluidsynth
        self._soundfont = soundfont
        self._keeper, _ = self._new_synth()
        write = fluidsynth._fl.fluid_synth_write_float
        write.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        write.restype = ctypes.c_int
        self._write_float = write

    def _new_synth(self):  # -> tuple[fluidsynth.Synth, int]
        synth = self._fluidsynth.Synth(
            gain=self.settings.gain, samplerate=self.settings.sample_rate
        )
        sfid = synth.sfload(str(self._soundfont))
        if sfid < 0:
            synth.delete()
            raise _explain(f"FluidSynth could not load the soundfont {self._soundfont}.")
        return synth, sfid

    def close(self) -> None:
        self._keeper.delete()

    def _pull(self, synth, frames: int) -> np.ndarray:
        """Synthesize ``frames`` samples and return them as mono float32."""
        left = np.zeros(frames, dtype=np.float32)
        right = np.zeros(frames, dtype=np.float32)
        self._write_float(synth.synth, frames, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        return 0.5 * (left + right)

    def render(self, midi: mido.MidiFile, *, room_size: float = 0.5) -> np.ndarray:
        """Render a whole MIDI file (plus a reverb tail) to mono float32 at the sample rate."""
        rate = self.settings.sample_rate
        synth, _ = self._new_synth()
        try:
            synth.set_reverb(roomsize=room_size, damping=0.4, width=0.8, level=0.7)
            chunks: list[np.ndarray] = []
            rendered = 0
            clock = 0.0
            for message in midi:  # mido yields merged tracks with delta times in seconds
                clock += message.time
                due = round(clock * rate)
                if due > rendered:
                    chunks.append(self._pull(synth, due - rendered))
                    rendered = due
                if not message.is_meta:
                    _send(synth, message)
            chunks.append(self._pull(synth, round(self.settings.tail_s * rate)))
        finally:
            synth.delete()
        return np.concatenate(chunks)


def _send(synth, message: mido.Message) -> None:
    """Play one MIDI channel message on the synth."""
    kind = message.type
    if kind == "note_on" and message.velocity > 0:
        synth.noteon(message.channel, message.note, message.velocity)
    elif kind in ("note_on", "note_off"):
        synth.noteoff(message.channel, message.note)
    elif kind == "program_change":
        synth.program_change(message.channel, message.program)
    elif kind == "control_change":
        synth.cc(message.channel, message.control, message.value)
    elif kind == "pitchwheel":
        synth.pitch_bend(message.channel, message.pitch)


def normalise_loudness(audio: np.ndarray, settings: RenderSettings) -> tuple[np.ndarray, float]:
    """Scale to the target integrated loudness (ITU-R BS.1770 via pyloudnorm), then down again
    if needed so that the peak stays below ``peak_dbfs``. Returns (audio, measured LUFS before).

    Silent or too-short audio (loudness undefined) is returned unchanged, with -inf.
    """
    import pyloudnorm

    rate = settings.sample_rate
    if audio.size < int(0.5 * rate) or not np.any(audio):
        return audio, float("-inf")
    loudness = float(pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64)))
    if not np.isfinite(loudness):
        return audio, loudness
    levelled = audio * np.float32(10 ** ((settings.target_lufs - loudness) / 20))
    peak = float(np.max(np.abs(levelled)))
    ceiling = 10 ** (settings.peak_dbfs / 20)
    if peak > ceiling:
        levelled *= np.float32(ceiling / peak)
    return levelled.astype(np.float32), loudness
