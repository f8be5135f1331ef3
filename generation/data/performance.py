"""The symbolic piece both sources produce, and its translation to a MIDI file.

A :class:`Performance` is notes on tracks at one constant tempo, plus what we know about the piece
(style, key, sections). The procedural generator and the music21 reader both build one; the
renderer plays its MIDI file. Because the tempo is constant and chosen by us, the ``bpm`` in every
caption is exactly the tempo that was played.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import mido

from generation.data.gm import DRUM_CHANNEL, instrument_name

TICKS_PER_BEAT = 480


@dataclass(frozen=True)
class Note:
    """One note; times in beats (quarter notes) from the start of the piece."""

    start: float
    duration: float
    pitch: int
    velocity: int


@dataclass
class Track:
    """A part played by one General MIDI program on one channel.

    ``role`` is what the part does in the arrangement (drums, bass, chords, melody, or a voice
    name such as "voice 2" for music21 parts). ``volume``, ``pan``, ``reverb`` and ``chorus`` are
    MIDI controller values 0..127 (7, 10, 91, 93): the light mix.
    """

    role: str
    program: int
    channel: int
    notes: list[Note] = field(default_factory=list)
    volume: int = 100
    pan: int = 64
    reverb: int = 40
    chorus: int = 0

    @property
    def is_drums(self) -> bool:
        return self.channel == DRUM_CHANNEL

    @property
    def instrument(self) -> str:
        """The caption name of this track's instrument."""
        return instrument_name(self.program, is_drums=self.is_drums)


@dataclass(frozen=True)
class Section:
    """A named stretch of the piece, in beats, with its energy (0..1)."""

    name: str
    start: float
    end: float
    energy: float


@dataclass
class Performance:
    """A piece ready to render: tracks at a constant tempo, and its known attributes."""

    piece_id: str
    source: str
    style: str
    bpm: float
    tonic: int
    mode: str
    tracks: list[Track]
    sections: list[Section] = field(default_factory=list)
    room_size: float = 0.5
    """Reverb room size for the synth (0..1): part of the piece's mix."""

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    @property
    def length_beats(self) -> float:
        """Beat at which the last note ends."""
        return max((n.start + n.duration for t in self.tracks for n in t.notes), default=0.0)

    @property
    def duration_s(self) -> float:
        return self.length_beats * self.seconds_per_beat

    def truncated(self, max_seconds: float) -> Performance:
        """A copy without the notes that start at or after ``max_seconds``.

        Notes that start before the cut but ring past it are shortened so the rendered piece
        ends close to the cut (plus the synth's release and reverb tail).
        """
        limit = max_seconds / self.seconds_per_beat
        if self.length_beats <= limit:
            return self
        tracks = []
        for t in self.tracks:
            notes = [
                Note(n.start, min(n.duration, limit - n.start), n.pitch, n.velocity)
                for n in t.notes
                if n.start < limit
            ]
            tracks.append(
                Track(t.role, t.program, t.channel, notes, t.volume, t.pan, t.reverb, t.chorus)
            )
        sections = [
            Section(s.name, s.start, min(s.end, limit), s.energy)
            for s in self.sections
            if s.start < limit
        ]
        return replace(self, tracks=tracks, sections=sections)


def to_midi(performance: Performance) -> mido.MidiFile:
    """A type-1 MIDI file: a tempo track, then one track per part with its program and mix.

    At equal ticks note-offs come before note-ons, so a note repeated on the same key is
    re-struck instead of being cut by its predecessor's note-off.
    """
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(performance.bpm), time=0))
    midi.tracks.append(conductor)
    for track in performance.tracks:
        events: list[tuple[int, int, mido.Message]] = []
        for note in track.notes:
            pitch = min(127, max(0, note.pitch))
            velocity = min(127, max(1, note.velocity))
            on = round(note.start * TICKS_PER_BEAT)
            off = max(on + 1, round((note.start + note.duration) * TICKS_PER_BEAT))
            ch = track.channel
            on_message = mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)
            events.append((on, 1, on_message))
            events.append((off, 0, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        mtrack = mido.MidiTrack()
        mtrack.append(mido.MetaMessage("track_name", name=track.role, time=0))
        ch = track.channel
        mtrack.append(mido.Message("program_change", channel=ch, program=track.program, time=0))
        for control, value in (
            (7, track.volume),
            (10, track.pan),
            (91, track.reverb),
            (93, track.chorus),
        ):
            mtrack.append(
                mido.Message(
                    "control_change",
                    channel=ch,
                    control=control,
                    value=min(127, max(0, value)),
                    time=0,
                )
            )
        now = 0
        for tick, _, message in events:
            mtrack.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(mtrack)
    return midi
