"""The attribute probe on synthetic classes whose labels, tempo and timbre are known exactly.

Three toy "styles": sustained harmonic tones (instrument "organ"), noise-burst drums on the beat
("drums"), and the drums over a low sine bass pulse ("drums" and "bass"). They are trivially
separable, so a working probe must get every held-out clip right; a broken feature extractor,
label mapping or save/load path would not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from generation.probe.features import FEATURE_NAMES, N_FEATURES, extract
from generation.probe.model import AttributeProbe, FitConfig

RATE = 24_000
STYLES = ("tones", "drums", "bass and drums")
INSTRUMENTS = {"tones": ["organ"], "drums": ["drums"], "bass and drums": ["bass", "drums"]}


def _tones(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 220.0 * 2 ** (rng.integers(0, 12) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in (1, 2, 3))
    return 0.2 * wave * np.minimum(1.0, t / 0.2)


def _drums(rng: np.random.Generator, seconds: float, bpm: float | None = None) -> np.ndarray:
    bpm = bpm if bpm is not None else rng.uniform(90, 150)
    audio = np.zeros(int(seconds * RATE))
    length = int(0.05 * RATE)
    for start in np.arange(rng.uniform(0, 0.1), seconds, 60.0 / bpm):
        i = int(start * RATE)
        burst = rng.standard_normal(length) * np.exp(-np.linspace(0, 8, length))
        audio[i : i + length] += 0.5 * burst[: audio.size - i]
    return audio


def _bass_and_drums(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    bass = 0.4 * np.sin(2 * np.pi * rng.uniform(55, 90) * t)
    return _drums(rng, seconds) + bass


MAKERS = {"tones": _tones, "drums": _drums, "bass and drums": _bass_and_drums}


def _dataset(seed: int, per_class: int, seconds: tuple[float, ...]) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (style, MAKERS[style](rng, seconds[i % len(seconds)]).astype(np.float32))
        for style in STYLES
        for i in range(per_class)
    ]


@pytest.fixture(scope="module")
def probe() -> AttributeProbe:
    torch.set_num_threads(1)
    clips = _dataset(seed=0, per_class=12, seconds=(1.5, 2.0, 10.0))  # as the real probe
    features = np.stack([extract(audio, RATE) for _, audio in clips])
    probe = AttributeProbe(STYLES, ["bass", "drums", "organ"], hidden=32, embed=16)
    info = probe.fit(
        features,
        [style for style, _ in clips],
        [INSTRUMENTS[style] for style, _ in clips],
        config=FitConfig(epochs=150, lr=1e-2),
    )
    assert info["train_loss"] < 0.2
    return probe


def test_features_are_deterministic_finite_and_level_independent():
    rng = np.random.default_rng(3)
    clip = _drums(rng, 10.0) + 0.1 * _tones(rng, 10.0)
    first, second = extract(clip, RATE), extract(clip.copy(), RATE)
    assert first.shape == (N_FEATURES,) == (len(FEATURE_NAMES),)
    assert np.array_equal(first, second)
    assert np.allclose(extract(0.1 * clip, RATE), first, atol=1e-4)
    for seconds in (1.5, 2.0, 10.0):
        assert np.isfinite(extract(clip[: int(seconds * RATE)], RATE)).all()
    assert np.isfinite(extract(np.zeros(2 * RATE), RATE)).all()  # silence
    with pytest.raises(ValueError, match="too short"):
        extract(clip[: RATE // 10], RATE)


def test_features_of_a_resampled_clip_stay_close():
    rng = np.random.default_rng(4)
    clip = _drums(rng, 3.0) + _tones(rng, 3.0)
    up = np.fft.irfft(np.fft.rfft(clip), 2 * clip.size) * 2  # the same clip at 48 kHz
    a, b = extract(clip, RATE), extract(up, 2 * RATE)
    mel_means = slice(0, 64)
    assert np.abs(a[mel_means] - b[mel_means]).max() < 0.05


def test_held_out_clips_get_their_style_and_instruments(probe):
    for style, audio in _dataset(seed=1, per_class=4, seconds=(1.5, 3.0, 10.0)):
        predicted, probs = probe.predict_style(audio, RATE)
        assert predicted == style
        assert set(probs) == set(STYLES)
        assert abs(sum(probs.values()) - 1) < 1e-5
        assert probs[style] > 0.5
        assert sorted(probe.predict_instruments(audio, RATE)) == sorted(INSTRUMENTS[style])


def test_save_and_load_give_identical_predictions(probe, tmp_path):
    path = tmp_path / "probe.pt"
    probe.save(path)
    state = torch.load(path, weights_only=True)
    assert state["format"] == "chorus-attribute-probe-v1"
    loaded = AttributeProbe.load(path)
    assert loaded.styles == probe.styles and loaded.instruments == probe.instruments
    clips = _dataset(seed=2, per_class=2, seconds=(2.0,))
    features = np.stack([extract(audio, RATE) for _, audio in clips])
    before, after = probe.predict_features(features), loaded.predict_features(features)
    assert np.array_equal(before.style_probs, after.style_probs)
    assert np.array_equal(before.instrument_probs, after.instrument_probs)
    assert np.array_equal(before.embedding, after.embedding)


def test_loading_something_else_fails(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "codec", "weights": {}}, path)
    with pytest.raises(ValueError, match="not an attribute probe"):
        AttributeProbe.load(path)


def test_tempo_of_a_click_track(probe):
    clicks = _drums(np.random.default_rng(5), 8.0, bpm=120.0)
    assert abs(probe.tempo(clicks, RATE) - 120.0) / 120.0 < 0.03
    assert 95 <= probe.tempo(clicks, RATE, bpm_range=(95, 110)) <= 110


def test_key_delegates_to_the_chroma_estimator(probe):
    t = np.arange(4 * RATE) / RATE
    a_minor = sum(np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * t) for n in (57, 60, 64, 69))
    estimate = probe.key(a_minor, RATE)
    assert (estimate.tonic, estimate.mode) == (9, "minor")


def test_similarity_is_one_with_itself_and_lower_across_classes(probe):
    rng = np.random.default_rng(6)
    tones, other_tones, drums = _tones(rng, 3.0), _tones(rng, 3.0), _drums(rng, 3.0)
    assert probe.similarity(tones, tones, RATE) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(probe.embedding(drums, RATE)) == pytest.approx(1.0, abs=1e-5)
    across = probe.similarity(tones, drums, RATE)
    assert across < probe.similarity(tones, other_tones, RATE)
    assert across < 0.9


def _write_corpus(root: Path) -> Path:
    """A tiny corpus on disk in the manifest layout: 3 styles x (4 train, 1 valid, 2 test)."""
    rng = np.random.default_rng(7)
    rows = []
    for style in STYLES:
        for i, split in enumerate(["train"] * 4 + ["valid"] + ["test"] * 2):
            bpm = 120.0
            audio = MAKERS[style](rng, 3.0) if style == "tones" else _drums(rng, 3.0, bpm)
            if style == "bass and drums":
                audio = audio + 0.4 * np.sin(2 * np.pi * 60 * np.arange(audio.size) / RATE)
            path = f"clips/{style.replace(' ', '-')}-{i}.flac"
            (root / "clips").mkdir(parents=True, exist_ok=True)
            soundfile.write(root / path, audio.astype(np.float32) / 2, RATE)
            rows.append(
                {
                    "id": f"{style}-{i}",
                    "path": path,
                    "split": split,
                    "style": style,
                    "instruments": INSTRUMENTS[style],
                    "bpm": bpm,
                    "key": "A",
                    "mode": "minor",
                    "sample_rate": RATE,
                    "duration_s": 3.0,
                    "piece_id": f"{style}-{i}",
                }
            )
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


def test_training_command_writes_a_probe_and_reports_held_out_figures(tmp_path, capsys):
    from generation.eval.__main__ import main as eval_main
    from generation.train.__main__ import main as train_main

    manifest = _write_corpus(tmp_path / "corpus")
    out = tmp_path / "probe.pt"
    train_main(
        [
            "probe",
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--epochs",
            "100",
            "--min-instrument-clips",
            "2",
            "--crops-per-clip",
            "2",
        ]
    )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.exists()
    assert report["styles"] == 3 and report["instruments"] == 3
    assert report["train_rows"] == 3 * 4 * 3  # whole clips and 2 crops each
    full, crops = report["test"]["full"], report["test"]["crop_2s"]
    assert full["rows"] == 6 and crops["rows"] == 12
    assert full["style_accuracy"] == 1.0
    drums_tempo = full["tempo_within_8pct"]
    assert drums_tempo >= 4 / 6  # the four drum clips at 120 BPM; tones have no beat
    assert AttributeProbe.load(out).info["heldout"]["full"] == full

    eval_main(
        ["probe", "--checkpoint", str(out), "--manifest", str(manifest), "--crops-per-clip", "2"]
    )
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["full"] == full and figures["crop_2s"] == crops
