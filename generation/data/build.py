"""Building a corpus: plan pieces per style, render them in worker processes, write the manifest.

The plan is a stream of :class:`PieceJob` per style (procedural pieces numbered from the build
seed; music21 pieces in a seeded shuffle, then again as new variants once all were used). Jobs
are handed out to the style furthest behind its share of the requested hours, with at most
:data:`WINDOW` jobs in flight, and results are committed strictly in submission order. Every
decision depends only on the seed and on results already committed, never on which worker
finished first, so the same seed gives the same manifest with any number of workers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import random
import re
import shutil
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import soundfile
from tqdm import tqdm

from generation.data.attributes import caption, window_attributes
from generation.data.clips import clip_windows, is_silent
from generation.data.manifest import (
    MANIFEST_NAME,
    SUMMARY_NAME,
    TOKENS_DIR,
    ClipRecord,
    summarize,
    write_manifest,
)
from generation.data.music21_source import (
    MUSIC21_STYLES,
    CorpusPiece,
    Music21Style,
    performance_for,
    style_pieces,
)
from generation.data.performance import Performance, to_midi
from generation.data.procedural import generate_piece
from generation.data.render import (
    Renderer,
    RenderSettings,
    check_fluidsynth,
    normalise_loudness,
    resolve_soundfont,
)
from generation.data.splits import split_for
from generation.data.styles import FORMS, STYLES, Style, style_slug

CORPUS_VERSION = "1"
WINDOW = 8
"""Jobs in flight at once. Fixed (not tied to --workers) so the plan never depends on it."""
MAX_FAILURES_IN_A_ROW = 25
"""A style whose pieces give no clips this many times in a row is given up (and reported)."""

AnyStyle = Style | Music21Style


def all_styles() -> dict[str, AnyStyle]:
    """Every style, procedural first, by name."""
    return {**STYLES, **MUSIC21_STYLES}


def resolve_styles(names: Sequence[str] = ()) -> list[AnyStyle]:
    """Styles by name or slug; ``procedural`` and ``music21`` stand for their whole group.

    An empty selection means every style. Unknown names raise ``ValueError`` listing the choices.
    """
    catalogue = all_styles()
    if not names:
        return list(catalogue.values())
    by_slug = {style_slug(name): style for name, style in catalogue.items()}
    chosen: dict[str, AnyStyle] = {}
    for name in names:
        slug = style_slug(name)
        if slug == "procedural":
            chosen |= STYLES
        elif slug == "music21":
            chosen |= MUSIC21_STYLES
        elif slug in by_slug:
            chosen[by_slug[slug].name] = by_slug[slug]
        else:
            known = ", ".join(sorted(by_slug))
            raise ValueError(f"unknown style {name!r}; known styles: {known}, procedural, music21")
    return list(chosen.values())


@dataclass(frozen=True)
class BuildConfig:
    """Everything that defines a corpus build."""

    out_dir: Path
    hours: float
    seed: int = 0
    workers: int = 2
    clip_seconds: float = 10.0
    styles: tuple[str, ...] = ()
    soundfont: Path | None = None
    max_piece_seconds: float = 240.0
    render: RenderSettings = field(default_factory=RenderSettings)


@dataclass(frozen=True)
class PieceJob:
    """One piece to render: which style, which piece, with which seed and variant."""

    style: str
    piece_id: str
    seed: int
    variant: int
    estimate_s: float
    corpus_path: str | None = None
    number: int | None = None


@dataclass
class PieceResult:
    """The clips one job produced (manifest rows), or why it produced none."""

    job: PieceJob
    rows: list[dict[str, Any]]
    rendered_s: float
    busy_s: float
    cpu_s: float
    error: str | None = None


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes and Python versions."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def _typical_seconds(style: Style) -> float:
    mid_bpm = sum(style.bpm_range) / 2
    bars = [sum(b for _, b in FORMS[form]) for form in style.forms]
    return sum(bars) / len(bars) * 4 * 60 / mid_bpm


def jobs_for(style: AnyStyle, build_seed: int, max_piece_seconds: float) -> Iterator[PieceJob]:
    """The endless, deterministic stream of pieces for one style."""
    if isinstance(style, Style):
        estimate = min(_typical_seconds(style), max_piece_seconds)
        for k in itertools.count():
            piece_id = f"procedural:{style.slug}/{build_seed}-{k:05d}"
            yield PieceJob(style.name, piece_id, derive_seed(build_seed, piece_id), 0, estimate)
    else:
        pieces = list(style_pieces(style))
        if not pieces:
            return
        random.Random(derive_seed(build_seed, style.slug)).shuffle(pieces)
        estimate = min(style.typical_seconds, max_piece_seconds)
        for variant in itertools.count():
            for piece in pieces:
                yield PieceJob(
                    style.name,
                    piece.piece_id,
                    derive_seed(build_seed, piece.piece_id, variant),
                    variant,
                    estimate,
                    piece.path,
                    piece.number,
                )


def allocate_seconds(styles: Sequence[AnyStyle], hours: float) -> dict[str, float]:
    """Seconds of audio per style: the requested hours shared by style weight."""
    total = sum(s.weight for s in styles)
    return {s.name: hours * 3600 * s.weight / total for s in styles}


# --- worker side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    out_dir: Path
    soundfont: Path
    clip_seconds: float
    max_piece_seconds: float
    render: RenderSettings


_WORKER: dict[str, Any] = {}


def init_worker(config: WorkerConfig) -> None:
    """Load the synth once per process (the soundfont load dominates short pieces)."""
    _WORKER["config"] = config
    _WORKER["renderer"] = Renderer(config.soundfont, config.render)


def make_performance(job: PieceJob) -> Performance:
    """The symbolic piece a job describes."""
    style = all_styles()[job.style]
    if isinstance(style, Style):
        return generate_piece(style, job.seed, piece_id=job.piece_id)
    assert job.corpus_path is not None
    return performance_for(CorpusPiece(job.corpus_path, job.number), style, job.seed)


def clip_id_for(piece_id: str, variant: int, index: int) -> str:
    """``music21:bach/bwv66.6``, variant 0, clip 3 -> ``music21-bach-bwv66.6-v0-003``."""
    return f"{re.sub(r'[^A-Za-z0-9.]+', '-', piece_id)}-v{variant}-{index:03d}"


def render_job(job: PieceJob) -> PieceResult:
    """Make, render, level and cut one piece; write its clips; return their manifest rows.

    Any failure of one piece (a score music21 cannot read, say) is returned as an error and the
    build goes on with the next piece.
    """
    config: WorkerConfig = _WORKER["config"]
    renderer: Renderer = _WORKER["renderer"]
    rate = config.render.sample_rate
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        performance = make_performance(job).truncated(config.max_piece_seconds)
        audio = renderer.render(to_midi(performance), room_size=performance.room_size)
        audio, _ = normalise_loudness(audio, config.render)
        style = all_styles()[job.style]
        energy_range = style.energy_range
        split = split_for(job.piece_id)
        rows = []
        for index, (start, end) in enumerate(clip_windows(audio.size, rate, config.clip_seconds)):
            clip = audio[start:end]
            if is_silent(clip, rate):
                continue
            attributes = window_attributes(
                performance, start / rate, end / rate, energy_range=energy_range
            )
            clip_id = clip_id_for(job.piece_id, job.variant, index)
            relative = f"clips/{style_slug(job.style)}/{clip_id}.flac"
            target = config.out_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(target, clip, rate, format="FLAC", subtype="PCM_16")
            record = ClipRecord.from_attributes(
                attributes,
                clip_id=clip_id,
                path=relative,
                split=split,
                caption=caption(attributes, clip_id),
                duration_s=round((end - start) / rate, 6),
                sample_rate=rate,
                start_s=round(start / rate, 6),
                variant=job.variant,
            )
            rows.append(record.to_json())
        return PieceResult(
            job,
            rows,
            audio.size / rate,
            time.perf_counter() - started,
            time.process_time() - cpu_started,
        )
    except Exception as error:  # one bad piece must not stop a build of thousands
        return PieceResult(
            job,
            [],
            0.0,
            time.perf_counter() - started,
            time.process_time() - cpu_started,
            error=f"{type(error).__name__}: {error}",
        )


# --- orchestration -------------------------------------------------------------------------


class _InlineHandle:
    def __init__(self, job: PieceJob) -> None:
        self.job = job

    def get(self) -> PieceResult:
        return render_job(self.job)


def _prepare_out_dir(out: Path) -> None:
    """Remove what a previous build here wrote (only our own files and folders)."""
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("clips", TOKENS_DIR):
        if (out / folder).is_dir():
            shutil.rmtree(out / folder)
    for name in (MANIFEST_NAME, SUMMARY_NAME):
        (out / name).unlink(missing_ok=True)


def build_corpus(config: BuildConfig, *, progress: bool = True) -> dict[str, Any]:
    """Render a corpus into ``config.out_dir``; returns what ``corpus.json`` says.

    Raises :class:`~generation.data.render.FluidSynthUnavailable` before touching anything if
    FluidSynth or the soundfont is missing, and ``ValueError`` for unknown styles. With
    ``workers > 1`` the workers are spawned processes, so a script calling this must do so under
    ``if __name__ == "__main__":`` (``python -m generation.data`` does).
    """
    soundfont = resolve_soundfont(config.soundfont)
    check_fluidsynth(soundfont)
    styles = resolve_styles(config.styles)
    targets = allocate_seconds(styles, config.hours)
    streams = {s.name: jobs_for(s, config.seed, config.max_piece_seconds) for s in styles}
    out = Path(config.out_dir)
    _prepare_out_dir(out)
    worker_config = WorkerConfig(
        out.resolve(), soundfont, config.clip_seconds, config.max_piece_seconds, config.render
    )

    pool = None
    if config.workers > 1:
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(config.workers, initializer=init_worker, initargs=(worker_config,))
    else:
        init_worker(worker_config)

    committed: dict[str, float] = defaultdict(float)
    in_flight_estimate: dict[str, float] = defaultdict(float)
    failures_in_a_row: Counter[str] = Counter()
    exhausted: set[str] = set()
    failures: list[str] = []
    rows: list[dict[str, Any]] = []
    rendered_s = busy_s = cpu_s = 0.0
    in_flight: deque[tuple[PieceJob, Any]] = deque()
    started = time.perf_counter()

    def next_job() -> PieceJob | None:
        """The next piece of the style furthest behind its target (first in order on ties)."""
        while True:
            name, most_behind = None, 0.0
            for candidate in targets:
                if candidate in exhausted:
                    continue
                missing = targets[candidate] - committed[candidate] - in_flight_estimate[candidate]
                if missing > 0 and missing / targets[candidate] > most_behind:
                    name, most_behind = candidate, missing / targets[candidate]
            if name is None:
                return None
            job = next(streams[name], None)
            if job is not None:
                return job
            exhausted.add(name)

    bar = tqdm(
        total=round(sum(targets.values())),
        unit="s",
        desc="rendering audio",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        while True:
            while len(in_flight) < WINDOW and (job := next_job()) is not None:
                handle = pool.apply_async(render_job, (job,)) if pool else _InlineHandle(job)
                in_flight.append((job, handle))
                in_flight_estimate[job.style] += job.estimate_s
            if not in_flight:
                break
            job, handle = in_flight.popleft()
            result: PieceResult = handle.get()
            in_flight_estimate[job.style] -= job.estimate_s
            rendered_s += result.rendered_s
            busy_s += result.busy_s
            cpu_s += result.cpu_s
            if result.error:
                failures.append(f"{job.piece_id}: {result.error}")
            if not result.rows:  # an error, or a piece too short or too quiet for one clip
                failures_in_a_row[job.style] += 1
                if failures_in_a_row[job.style] >= MAX_FAILURES_IN_A_ROW:
                    exhausted.add(job.style)
                continue
            failures_in_a_row[job.style] = 0
            seconds = sum(r["duration_s"] for r in result.rows)
            committed[job.style] += seconds
            rows.extend(result.rows)
            bar.update(max(0, min(round(seconds), bar.total - bar.n)))
            speed = rendered_s / max(1e-9, time.perf_counter() - started)
            bar.set_postfix(x_realtime=f"{speed:.0f}")
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()

    write_manifest(rows, out / MANIFEST_NAME)
    wall = time.perf_counter() - started
    summary = {
        "version": CORPUS_VERSION,
        "seed": config.seed,
        "hours_requested": config.hours,
        "clip_seconds": config.clip_seconds,
        "sample_rate": config.render.sample_rate,
        "render": asdict(config.render),
        "max_piece_seconds": config.max_piece_seconds,
        "styles": [s.name for s in styles],
        "soundfont": str(soundfont),
        **summarize(rows),
        "failed_pieces": len(failures),
        "failures": failures[:20],
        "workers": config.workers,
        "build_seconds": round(wall, 2),
        "rendered_audio_hours": round(rendered_s / 3600, 4),
        "render_speed_x_realtime_per_process": round(rendered_s / max(busy_s, 1e-9), 1),
        "render_speed_x_realtime_per_cpu_second": round(rendered_s / max(cpu_s, 1e-9), 1),
        "throughput_x_realtime": round(rendered_s / max(wall, 1e-9), 1),
    }
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
