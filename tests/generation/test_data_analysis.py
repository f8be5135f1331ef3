"""The tempo and key estimators read synthetic signals whose tempo and key are known exactly."""

from __future__ import annotations

import numpy as np

from generation.data.analysis import chroma, estimate_key, estimate_tempo

RATE = 24_000


def _clicks(bpm: float, seconds: float = 10.0, accent_every: int = 4) -> np.ndarray:
    """Decaying noise bursts on every beat, louder on the first beat of each bar."""
    rng = np.random.default_rng(0)
    audio = np.zeros(int(seconds * RATE))
    burst = rng.standard_normal(int(0.03 * RATE)) * np.exp(-np.linspace(0, 8, int(0.03 * RATE)))
    for beat, start in enumerate(np.arange(0, seconds, 60 / bpm)):
        i = int(start * RATE)
        gain = 1.0 if beat % accent_every == 0 else 0.6
        audio[i : i + burst.size] += gain * burst[: audio.size - i]
    return audio


def _tones(midi_notes: list[int], seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return sum(np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * t) for n in midi_notes)


def test_tempo_of_a_click_track_is_found_to_within_half_a_percent():
    for bpm in (72.0, 97.0, 123.0, 174.0):
        estimate = estimate_tempo(_clicks(bpm), RATE)
        assert abs(estimate - bpm) / bpm < 0.005, (bpm, estimate)


def test_the_search_stays_inside_the_given_range():
    assert 60 <= estimate_tempo(_clicks(200.0), RATE) <= 180
    assert 90 <= estimate_tempo(_clicks(200.0), RATE, bpm_range=(90, 110)) <= 110


def test_chroma_of_a_chord_peaks_on_its_notes():
    profile = chroma(_tones([60, 64, 67]), RATE)  # C E G
    assert set(np.argsort(profile)[-3:]) == {0, 4, 7}
    assert abs(profile.sum() - 1) < 1e-9


def test_key_of_a_scale_with_its_tonic_triad():
    d_major = [62, 64, 66, 67, 69, 71, 73] + [62, 66, 69] * 2
    estimate = estimate_key(_tones(d_major), RATE)
    assert (estimate.tonic, estimate.mode) == (2, "major")
    a_minor = [57, 59, 60, 62, 64, 65, 67] + [57, 60, 64] * 2
    estimate = estimate_key(_tones(a_minor), RATE)
    assert (estimate.tonic, estimate.mode) == (9, "minor")
