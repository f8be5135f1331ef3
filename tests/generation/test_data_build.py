"""Building a corpus: manifest contract, splits by piece, determinism, shards, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from generation.data import (
    MANIFEST_KEYS,
    BuildConfig,
    build_corpus,
    iter_clips,
    iter_token_shards,
    read_manifest,
    token_dir,
    write_token_shards,
)
from generation.data.render import FluidSynthUnavailable, check_fluidsynth, resolve_soundfont
from generation.data.splits import SPLITS, split_for

REPO = Path(__file__).resolve().parents[2]


def _fluidsynth_problem() -> str | None:
    try:
        check_fluidsynth(resolve_soundfont())
    except FluidSynthUnavailable as error:
        return str(error)
    return None


needs_fluidsynth = pytest.mark.skipif(
    _fluidsynth_problem() is not None,
    reason=f"FluidSynth or its soundfont is missing: {_fluidsynth_problem()}",
)

TINY = {
    "hours": 0.02,
    "seed": 7,
    "workers": 1,
    "clip_seconds": 5.0,
    "styles": ("techno", "baroque chorale", "folk song"),
    "max_piece_seconds": 24.0,
}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """A corpus of a few dozen 5-second clips from one procedural and two music21 styles."""
    if _fluidsynth_problem():
        pytest.skip(f"FluidSynth or its soundfont is missing: {_fluidsynth_problem()}")
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(BuildConfig(out_dir=out, **TINY), progress=False)
    return out


@needs_fluidsynth
def test_every_manifest_row_has_the_agreed_keys_and_types(tiny_corpus):
    rows = read_manifest(tiny_corpus / "manifest.jsonl")
    assert rows
    for row in rows:
        assert set(MANIFEST_KEYS) <= set(row)
        assert isinstance(row["id"], str) and isinstance(row["caption"], str) and row["caption"]
        assert row["split"] in {"train", "valid", "test"}
        assert isinstance(row["instruments"], list) and row["instruments"]
        assert all(isinstance(name, str) for name in row["instruments"])
        assert isinstance(row["bpm"], float) and isinstance(row["energy"], float)
        assert 0.0 <= row["energy"] <= 1.0
        assert row["mode"] in {"major", "minor"}
        assert row["sample_rate"] == 24_000 and row["duration_s"] == 5.0
        assert (tiny_corpus / row["path"]).is_file()
        assert row["source"].startswith(("procedural:", "music21:"))
    assert {r["style"] for r in rows} == set(TINY["styles"])
    assert len({r["id"] for r in rows}) == len(rows)


@needs_fluidsynth
def test_no_piece_is_in_two_splits(tiny_corpus):
    splits_of_piece = defaultdict(set)
    for row in read_manifest(tiny_corpus / "manifest.jsonl"):
        splits_of_piece[row["piece_id"]].add(row["split"])
        assert row["split"] == split_for(row["piece_id"])
    assert all(len(splits) == 1 for splits in splits_of_piece.values())


def test_splits_follow_the_piece_id_in_the_intended_proportions():
    ids = [f"music21:folk/{i}" for i in range(20_000)]
    counts = defaultdict(int)
    for piece_id in ids:
        counts[split_for(piece_id)] += 1
    for name, share in SPLITS:
        assert abs(counts[name] / len(ids) - share) < 0.01
    assert [split_for(i) for i in ids[:50]] == [split_for(i) for i in ids[:50]]


@needs_fluidsynth
def test_the_same_seed_builds_the_same_manifest_and_another_seed_does_not(tiny_corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(BuildConfig(out_dir=again, **TINY), progress=False)
    assert (again / "manifest.jsonl").read_bytes() == (tiny_corpus / "manifest.jsonl").read_bytes()

    other = tmp_path / "other"
    build_corpus(
        BuildConfig(out_dir=other, **{**TINY, "seed": 8, "styles": ("techno",)}), progress=False
    )
    first_ids = {r["piece_id"] for r in read_manifest(tiny_corpus / "manifest.jsonl")}
    assert not first_ids & {r["piece_id"] for r in read_manifest(other / "manifest.jsonl")}


@needs_fluidsynth
def test_corpus_json_totals_agree_with_the_manifest(tiny_corpus):
    summary = json.loads((tiny_corpus / "corpus.json").read_text())
    rows = read_manifest(tiny_corpus / "manifest.jsonl")
    assert summary["seed"] == 7 and summary["version"]
    assert summary["clips"] == len(rows) == sum(summary["clips_per_split"].values())
    assert abs(sum(summary["hours_per_style"].values()) - len(rows) * 5 / 3600) < 1e-3
    assert summary["hours"] >= TINY["hours"]
    assert summary["failed_pieces"] == 0


@needs_fluidsynth
def test_clips_read_back_as_mono_audio_at_the_stated_rate_and_are_not_silent(tiny_corpus):
    manifest = tiny_corpus / "manifest.jsonl"
    total = 0
    for row, audio in iter_clips(manifest, "train"):
        assert row["split"] == "train"
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert audio.size == round(row["duration_s"] * row["sample_rate"])
        assert np.sqrt(np.mean(audio**2)) > 10 ** (-45 / 20)
        assert np.max(np.abs(audio)) <= 10 ** (-1 / 20) + 1e-3
        total += 1
    assert total == len(read_manifest(manifest, "train"))


@needs_fluidsynth
def test_token_shards_store_any_codec_output_by_split(tiny_corpus, tmp_path):
    def encode(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        frames = audio[: audio.size - audio.size % 960].reshape(-1, 960)  # 25 frames/s
        level = np.clip(np.abs(frames).mean(axis=1) * 1000, 0, 1023).astype(np.int16)
        return np.stack([level, level // 2])

    manifest = tiny_corpus / "manifest.jsonl"
    out = token_dir(tmp_path, "toy-v1")
    paths = write_token_shards(manifest, encode, out, clips_per_shard=4)
    assert paths and all(p.parent == out for p in paths)
    assert out == tmp_path / "tokens" / "toy-v1"
    assert (out / "train-0000.npz").is_file()
    for split in ("train", "valid", "test"):
        stored = list(iter_token_shards(out, split))
        expected = [
            (row["id"], encode(audio, 24_000)) for row, audio in iter_clips(manifest, split)
        ]
        assert [i for i, _ in stored] == [i for i, _ in expected]
        for (_, codes), (_, want) in zip(stored, expected, strict=True):
            assert codes.shape == (2, 125)
            np.testing.assert_array_equal(codes, want)


def test_a_missing_soundfont_explains_what_to_install_and_exits_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "generation.data",
            "build",
            "--hours",
            "0.01",
            "--out",
            str(tmp_path / "c"),
            "--soundfont",
            str(tmp_path / "missing.sf2"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    assert "apt-get install fluidsynth fluid-soundfont-gm" in result.stderr
    assert "missing.sf2" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "c").exists()


def test_unknown_styles_are_refused_with_the_list_of_known_ones(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "generation.data",
            "build",
            "--hours",
            "1",
            "--styles",
            "polka",
            "--out",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown style 'polka'" in result.stderr and "techno" in result.stderr


@needs_fluidsynth
def test_stats_summarises_a_built_corpus(tiny_corpus):
    result = subprocess.run(
        [sys.executable, "-m", "generation.data", "stats", str(tiny_corpus)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "baroque chorale" in result.stdout and "hours" in result.stdout
    assert "seed 7" in result.stdout
