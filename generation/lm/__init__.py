"""The token LM: a transformer over codec tokens that streams forever and steers by blends.

    from generation.lm import Engine, Steering
    engine = Engine.load()
    session = engine.session(seed=1, steering=Steering.of("lo-fi hip hop", bpm=80))
    chunk = session.next_chunk()

See docs/lm.md for the design, the training recipe and the measured figures.
"""

from pathlib import Path

from generation.lm.model import LMConfig, TokenLM
from generation.lm.pattern import DelayPattern
from generation.lm.stream import Chunk, Engine, Sampling, StreamSession
from generation.steering import Controls, Steering

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "lm-small-v1.pt"

__all__ = [
    "DEFAULT_CHECKPOINT",
    "Chunk",
    "Controls",
    "DelayPattern",
    "Engine",
    "LMConfig",
    "Sampling",
    "Steering",
    "StreamSession",
    "TokenLM",
]
