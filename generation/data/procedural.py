"""The procedural generator: a :class:`~generation.data.styles.Style` and a seed make a piece.

A piece is a form (a sequence of sections such as intro, build, drop, breakdown, outro); each
section plays the layers its :class:`~generation.data.styles.SectionPlan` names, at an intensity
that sets velocities and the section's energy attribute. Harmony follows one main chord
progression (another one in breakdowns); the bass and chord parts play the style's one-bar
rhythm patterns over it; the melody repeats a two-bar motif per section kind, so that repeated
drops are recognisably the same tune. Everything random comes from one ``random.Random(seed)``:
the same style and seed always give the same piece.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from generation.data.gm import DRUM_CHANNEL, DRUM_NOTES
from generation.data.performance import Note, Performance, Section, Track
from generation.data.styles import FORMS, SECTIONS, Style
from generation.data.theory import (
    Chord,
    parse_numeral,
    pitch_in_range,
    scale_pitch,
    voice_chord,
)

STEPS_PER_BAR = 16
BEATS_PER_BAR = 4
STEP = BEATS_PER_BAR / STEPS_PER_BAR
CHANNELS = {"bass": 0, "chords": 1, "melody": 2, "drums": DRUM_CHANNEL}
DRUM_VELOCITY = {"x": 112, "o": 92, "g": 50}


@dataclass(frozen=True)
class PatternEvent:
    """One onset of a one-bar pattern: its step, symbol and length in steps (1 + holds)."""

    step: int
    symbol: str
    length: int


def pattern_events(pattern: str) -> list[PatternEvent]:
    """Parse a 16-step pattern string; ``-`` extends the previous event, ``.`` is silence."""
    if len(pattern) != STEPS_PER_BAR:
        raise ValueError(f"pattern must have {STEPS_PER_BAR} steps: {pattern!r}")
    events: list[PatternEvent] = []
    for step, symbol in enumerate(pattern):
        if symbol == "-":
            if events and events[-1].step + events[-1].length == step:
                last = events[-1]
                events[-1] = PatternEvent(last.step, last.symbol, last.length + 1)
        elif symbol != ".":
            events.append(PatternEvent(step, symbol, 1))
    return events


@dataclass(frozen=True)
class MotifNote:
    step: int  # within the motif, on the melody grid
    length: int
    degree: int  # scale degree above the tonic at the bottom of the melody range


@dataclass
class _Context:
    """What every part of one piece shares while it is being written."""

    style: Style
    rng: random.Random
    tonic: int
    mode: str

    def step_to_beat(self, bar_start: float, step: float) -> float:
        """Beat of a (fractional) 16th step, with the style's swing and a little human timing."""
        style = self.style
        beat = bar_start + step * STEP
        whole = int(step)
        if whole == step and style.swing:
            if style.swing_grid == 8 and whole % 4 == 2:
                beat += style.swing * STEP * 2 / 3
            elif style.swing_grid == 16 and whole % 2 == 1:
                beat += style.swing * STEP / 3
        return beat

    def humanize(self, beat: float, bpm: float) -> float:
        if not self.style.humanize_ms:
            return beat
        jitter_s = self.rng.uniform(-1, 1) * self.style.humanize_ms / 1000
        return max(0.0, beat + jitter_s * bpm / 60)

    def velocity(self, base: float, level: float) -> int:
        return round(base * (0.72 + 0.28 * level) + self.rng.uniform(-4, 4))


def generate_piece(
    style: Style, seed: int, *, piece_id: str, form: str | None = None
) -> Performance:
    """Write one piece in ``style``; ``form`` picks a form from :data:`FORMS` (default random)."""
    rng = random.Random(seed)
    bpm = float(rng.randint(*style.bpm_range))
    mode = _weighted_choice(rng, style.modes)
    tonic = rng.randrange(12)
    ctx = _Context(style, rng, tonic, mode)

    chord_program = rng.choice(style.chord_programs)
    programs = {
        "bass": rng.choice(style.bass_programs),
        "chords": chord_program,
        "melody": rng.choice(style.melody_programs),
    }
    for role in style.shared_roles:
        programs[role] = chord_program
    tracks: dict[str, Track] = {}
    if style.has_drums:
        programs["drums"] = rng.choice(style.drum_kits)
    for role, program in programs.items():
        send = style.reverb_send if role in ("chords", "melody") else style.reverb_send // 2
        tracks[role] = Track(
            role=role,
            program=program,
            channel=CHANNELS[role],
            volume=min(127, style.mix[role] + rng.randint(-6, 6)),
            pan=64 if role in ("drums", "bass") else 64 + rng.randint(-20, 20),
            reverb=min(127, max(0, send + rng.randint(-12, 12))),
            chorus=rng.choice((0, 0, 30)) if role == "chords" else 0,
        )

    form_name = form or rng.choice(style.forms)
    main_progression = rng.choice(style.progressions[mode])
    alt_progression = rng.choice(style.progressions[mode])
    bass_pattern = pattern_events(rng.choice(style.bass_patterns))
    chord_pattern = pattern_events(rng.choice(style.chord_patterns))
    motifs: dict[str, list[MotifNote]] = {}
    previous_voicing: list[int] | None = None
    lo, hi = style.energy_range

    sections: list[Section] = []
    bar_start = 0.0
    form_steps = FORMS[form_name]
    for index, (name, bars) in enumerate(form_steps):
        plan = SECTIONS[name]
        progression = alt_progression if name == "breakdown" else main_progression
        numerals = [
            progression[(bar // style.bars_per_chord) % len(progression)] for bar in range(bars)
        ]
        chords = [parse_numeral(numeral, tonic, mode) for numeral in numerals]
        next_is_drop = index + 1 < len(form_steps) and form_steps[index + 1][0] == "drop"
        section_start = bar_start
        if name not in motifs:
            motifs[name] = _motif(ctx)
        for bar, chord in enumerate(chords):
            next_chord = chords[bar + 1] if bar + 1 < len(chords) else chords[0]
            if style.has_drums and plan.drums:
                patterns = style.drum_patterns
                fill = bar == bars - 1 and next_is_drop and "fill" in patterns
                pattern = patterns["fill" if fill else plan.drums]
                crash = name == "drop" and bar == 0
                _drum_bar(ctx, tracks["drums"], bar_start, pattern, plan.level, bpm, crash)
            if plan.bass:
                if style.walking_bass:
                    _walking_bass_bar(ctx, tracks["bass"], bar_start, chord, next_chord, plan.level)
                else:
                    _bass_bar(ctx, tracks["bass"], bar_start, bass_pattern, chord, plan.level, bpm)
            if plan.chords:
                previous_voicing = _chord_bar(
                    ctx,
                    tracks["chords"],
                    bar_start,
                    chord_pattern,
                    chord,
                    previous_voicing,
                    plan.level,
                    bpm,
                )
            if plan.melody and bar % 2 == 0:
                variation = (bar // 2) % 4 == 3
                bar_chords = [chord, next_chord if bar + 1 < bars else chord]
                _melody_bars(
                    ctx,
                    tracks["melody"],
                    bar_start,
                    motifs[name],
                    bar_chords,
                    plan.level,
                    bpm,
                    variation,
                )
            bar_start += BEATS_PER_BAR
        sections.append(
            Section(name, section_start, bar_start, round(lo + (hi - lo) * plan.level, 3))
        )

    used = [t for t in tracks.values() if t.notes]
    for t in used:
        t.notes.sort(key=lambda n: (n.start, n.pitch))
    return Performance(
        piece_id=piece_id,
        source=f"procedural:{style.slug}",
        style=style.name,
        bpm=bpm,
        tonic=tonic,
        mode=mode,
        tracks=used,
        sections=sections,
        room_size=min(1.0, max(0.0, style.room_size + rng.uniform(-0.1, 0.1))),
    )


def _weighted_choice(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _drum_bar(
    ctx: _Context,
    track: Track,
    bar_start: float,
    pattern: Mapping[str, str],
    level: float,
    bpm: float,
    crash: bool,
) -> None:
    for drum in sorted(pattern):
        for event in pattern_events(pattern[drum]):
            beat = ctx.humanize(ctx.step_to_beat(bar_start, event.step), bpm)
            velocity = ctx.velocity(DRUM_VELOCITY[event.symbol], level)
            track.notes.append(Note(beat, STEP, DRUM_NOTES[drum], velocity))
    if crash:
        track.notes.append(Note(bar_start, 1.0, DRUM_NOTES["crash"], ctx.velocity(105, level)))


def _bass_bar(
    ctx: _Context,
    track: Track,
    bar_start: float,
    pattern: Sequence[PatternEvent],
    chord: Chord,
    level: float,
    bpm: float,
) -> None:
    low, high = ctx.style.bass_range
    root = pitch_in_range(chord.root, low)
    offsets = {"R": 0, "F": 7, "O": 12, "T": chord.intervals[1]}
    for event in pattern:
        pitch = root + offsets[event.symbol]
        if pitch > high + 7:
            pitch -= 12
        beat = ctx.humanize(ctx.step_to_beat(bar_start, event.step), bpm)
        duration = event.length * STEP * 0.9
        track.notes.append(Note(beat, duration, pitch, ctx.velocity(96, level)))


def _walking_bass_bar(
    ctx: _Context, track: Track, bar_start: float, chord: Chord, next_chord: Chord, level: float
) -> None:
    """Four quarter notes: root, two chord tones, and a chromatic approach to the next root."""
    low, _ = ctx.style.bass_range
    root = pitch_in_range(chord.root, low + 2)
    third, fifth = root + chord.intervals[1], root + chord.intervals[2]
    target = pitch_in_range(next_chord.root, low + 2)
    approach = target + ctx.rng.choice((-1, 1))
    line = [
        root,
        ctx.rng.choice((third, fifth)),
        ctx.rng.choice((fifth, root + 12, third)),
        approach,
    ]
    for beat, pitch in enumerate(line):
        velocity = ctx.velocity(100 if beat in (0, 2) else 90, level)
        track.notes.append(Note(bar_start + beat, 0.92, pitch, velocity))


def _chord_bar(
    ctx: _Context,
    track: Track,
    bar_start: float,
    pattern: Sequence[PatternEvent],
    chord: Chord,
    previous: list[int] | None,
    level: float,
    bpm: float,
) -> list[int]:
    style = ctx.style
    voicing = voice_chord(chord, *style.chord_range, previous)
    strum_beats = style.strum_ms / 1000 * bpm / 60
    for event in pattern:
        beat = ctx.humanize(ctx.step_to_beat(bar_start, event.step), bpm)
        duration = event.length * STEP * 0.95
        base = 78 if event.symbol in "XDU" else 70
        if event.symbol in "XDU":
            order = voicing if event.symbol != "U" else list(reversed(voicing))
            for i, pitch in enumerate(order):
                offset = i * strum_beats if event.symbol in "DU" else 0.0
                track.notes.append(
                    Note(
                        beat + offset,
                        max(STEP / 2, duration - offset),
                        pitch,
                        ctx.velocity(base, level),
                    )
                )
        else:
            pitch = voicing[(int(event.symbol) - 1) % len(voicing)]
            track.notes.append(Note(beat, duration, pitch, ctx.velocity(base, level)))
    return voicing


def _motif(ctx: _Context) -> list[MotifNote]:
    """A two-bar melodic idea: a rhythm on the style's grid and a stepwise degree contour."""
    style, rng = ctx.style, ctx.rng
    steps = 2 * style.melody_grid
    per_beat = style.melody_grid // BEATS_PER_BAR
    onsets = [0]
    for step in range(1, steps - 1):
        weight = 1.6 if step % per_beat == 0 else (1.0 if step % (per_beat // 2 or 1) == 0 else 0.6)
        if rng.random() < style.melody_density * weight:
            onsets.append(step)
    notes: list[MotifNote] = []
    degree = rng.choice((0, 2, 4, 7))
    for i, step in enumerate(onsets):
        end = onsets[i + 1] if i + 1 < len(onsets) else steps
        length = min(end - step, 2 * per_beat * 2)
        notes.append(MotifNote(step, length, degree))
        degree = max(-2, min(11, degree + rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3))))
    # Phrases come home: the motif ends on the tonic, which also makes the key audible.
    last = notes[-1]
    notes[-1] = MotifNote(last.step, last.length, min((0, 7), key=lambda d: abs(d - last.degree)))
    return notes


def _melody_bars(
    ctx: _Context,
    track: Track,
    bar_start: float,
    motif: Sequence[MotifNote],
    chords: Sequence[Chord],
    level: float,
    bpm: float,
    variation: bool,
) -> None:
    """Play the two-bar motif from ``bar_start``; strong beats land on tones of the chord."""
    style, rng = ctx.style, ctx.rng
    low, high = style.melody_range
    grid_step = STEPS_PER_BAR / style.melody_grid
    per_beat = style.melody_grid // BEATS_PER_BAR
    base = pitch_in_range(ctx.tonic, low)
    for note in motif:
        degree = note.degree
        if variation and note.step >= style.melody_grid:
            degree += rng.choice((-2, -1, 1, 2))
        pitch = scale_pitch(ctx.tonic, ctx.mode, degree, base + 1)
        chord = chords[min(1, note.step // style.melody_grid)]
        if note.step % per_beat == 0:
            pitch = min(
                (p for p in range(pitch - 2, pitch + 3) if p % 12 in chord.pitch_classes),
                key=lambda p: abs(p - pitch),
                default=pitch,
            )
        while pitch > high:
            pitch -= 12
        while pitch < low:
            pitch += 12
        step16 = note.step * grid_step
        beat = ctx.humanize(ctx.step_to_beat(bar_start, step16), bpm)
        duration = note.length * grid_step * STEP * 0.9
        accent = 100 if note.step % per_beat == 0 else 88
        track.notes.append(Note(beat, duration, pitch, ctx.velocity(accent, level)))
