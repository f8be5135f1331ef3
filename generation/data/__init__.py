"""The training corpus: symbolic music (the music21 corpus and procedural styles) rendered
through FluidSynth into captioned clips.

Build one with ``python -m generation.data build --hours N``; read it with :func:`iter_clips`;
store codec tokens beside it with :func:`write_token_shards`. See docs/corpus.md.
"""

from generation.data.build import BuildConfig, build_corpus
from generation.data.manifest import (
    MANIFEST_KEYS,
    iter_clips,
    iter_token_shards,
    read_manifest,
    token_dir,
    write_token_shards,
)
from generation.data.render import FluidSynthUnavailable

__all__ = [
    "MANIFEST_KEYS",
    "BuildConfig",
    "FluidSynthUnavailable",
    "build_corpus",
    "iter_clips",
    "iter_token_shards",
    "read_manifest",
    "token_dir",
    "write_token_shards",
]
