"""The attribute probe: reads style, instruments, tempo and key back from audio.

A measuring instrument for the music generator (style and tempo accuracy against prompts,
steering flips on 2 s chunks, similarity between clips). ``features`` turns a clip into a fixed
vector, ``model`` holds :class:`AttributeProbe`, ``corpus`` extracts training rows from a corpus
manifest and scores a probe on held-out clips. Train with ``python -m generation.train probe``,
score with ``python -m generation.eval probe``.
"""

from generation.probe.model import AttributeProbe, FitConfig, ProbeOutput

__all__ = ["AttributeProbe", "FitConfig", "ProbeOutput"]
