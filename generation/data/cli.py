"""Command line: ``python -m generation.data build|stats|styles``.

python -m generation.data build --hours 20 --out var/corpus/default --seed 0 --workers 2
python -m generation.data stats var/corpus/default
python -m generation.data styles
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from generation.data.build import BuildConfig, all_styles, build_corpus, resolve_styles
from generation.data.manifest import (
    MANIFEST_NAME,
    SUMMARY_NAME,
    format_summary,
    read_manifest,
    summarize,
)
from generation.data.render import FluidSynthUnavailable

DEFAULT_OUT = Path("var/corpus/default")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generation.data",
        description="Build the Chorus training corpus from symbolic music rendered by FluidSynth.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="render a corpus of clips with captions")
    build.add_argument("--hours", type=float, required=True, help="hours of clips to render")
    build.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    build.add_argument("--seed", type=int, default=0, help="same seed, same corpus (default 0)")
    build.add_argument("--workers", type=int, default=2, help="render processes (default 2)")
    build.add_argument("--clip-seconds", type=float, default=10.0, help="clip length (default 10)")
    build.add_argument(
        "--styles",
        nargs="+",
        default=(),
        metavar="STYLE",
        help="styles by name or slug, or 'procedural' / 'music21' (default all)",
    )
    build.add_argument(
        "--soundfont",
        type=Path,
        default=None,
        help="General MIDI soundfont (default $CHORUS_SOUNDFONT or FluidR3_GM)",
    )
    build.add_argument(
        "--max-piece-seconds",
        type=float,
        default=240.0,
        help="render at most this much of each piece (default 240)",
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")

    stats = commands.add_parser("stats", help="totals of a built corpus")
    stats.add_argument("out", type=Path, help="the corpus directory")

    commands.add_parser("styles", help="list the styles a corpus can contain")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if args.command == "styles":
        for style in all_styles().values():
            kind = "music21" if hasattr(style, "collections") else "procedural"
            print(f"{style.slug:<26} {kind:<10} bpm {style.bpm_range[0]}-{style.bpm_range[1]}")
        return 0

    if args.command == "stats":
        manifest = args.out / MANIFEST_NAME
        if not manifest.is_file():
            print(f"No corpus at {args.out}: {manifest} does not exist.", file=sys.stderr)
            return 2
        print(format_summary(summarize(read_manifest(manifest))))
        summary_path = args.out / SUMMARY_NAME
        if summary_path.is_file():
            built = json.loads(summary_path.read_text())
            print(
                f"built with seed {built.get('seed')}, version {built.get('version')}, "
                f"render speed {built.get('render_speed_x_realtime_per_process')}x real time "
                f"per process, {built.get('build_seconds')} s wall"
            )
        return 0

    try:
        resolve_styles(args.styles)
    except ValueError as error:
        parser.error(str(error))
    if args.hours <= 0 or args.clip_seconds <= 0 or args.workers < 1:
        parser.error("--hours and --clip-seconds must be positive, --workers at least 1")
    config = BuildConfig(
        out_dir=args.out,
        hours=args.hours,
        seed=args.seed,
        workers=args.workers,
        clip_seconds=args.clip_seconds,
        styles=tuple(args.styles),
        soundfont=args.soundfont,
        max_piece_seconds=args.max_piece_seconds,
    )
    try:
        summary = build_corpus(config, progress=not args.quiet)
    except FluidSynthUnavailable as error:
        print(str(error), file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(
        f"render speed {summary['render_speed_x_realtime_per_process']}x real time per process "
        f"({summary['render_speed_x_realtime_per_cpu_second']}x per CPU second), "
        f"{summary['throughput_x_realtime']}x overall, {summary['build_seconds']} s wall; "
        f"{summary['failed_pieces']} pieces failed"
    )
    return 0
