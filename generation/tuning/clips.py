"""Items as the critic and DPO read them: codec codes and the condition they were made under.

* **Codes.** Songs keep the codes they were generated from (``RenderedSong.codes``, stored beside
  the master by the web side); when a song has none (made before, or by another backend) its
  audio is encoded again by the codec, which gives codes the LM could have made, not the ones
  it did. Room chunks and previews are encoded from their audio for now (their generator does
  not keep codes yet), without the context they continued.
* **Condition.** The steering the item was made under, as the LM's condition features, with the
  section left unspecified: a song changes section as it goes, and one steady condition must
  stand for all of it (the model learned an "unspecified" section, so this is a condition it
  knows).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from generation.lm.conditioning import TextEncoder, blend_embeddings, condition_features
from generation.lm.model import TokenLM
from generation.steering import Steering
from generation.tuning.dpo import Clip


class ClipMaker:
    """Makes :class:`Clip` objects for one LM (its vocabularies) and its codec."""

    def __init__(self, lm: TokenLM, codec=None, text: TextEncoder | None = None):
        self.lm, self.codec, self._text = lm, codec, text
        self._embeddings: dict[str, np.ndarray] = {}

    @property
    def text(self) -> TextEncoder:
        if self._text is None:
            self._text = TextEncoder.shared()
        return self._text

    def condition(self, steering: Steering) -> dict[str, Tensor]:
        """Condition features (a batch of one) of a steering, its section unspecified."""
        prompts = [(t, w) for t, w in steering.prompts if t.strip() and w > 0]
        missing = [t for t, _ in prompts if t not in self._embeddings]
        if missing:
            for text, vector in zip(missing, self.text.encode(missing), strict=True):
                self._embeddings[text] = vector
        embedding = None
        if prompts:
            vectors = np.stack([self._embeddings[t] for t, _ in prompts])
            embedding = blend_embeddings(vectors, [w for _, w in prompts])
        controls = replace(steering.controls, section=None)
        return condition_features([(embedding, controls)], self.lm.config.vocab)

    def codes_of_audio(self, pcm: np.ndarray, sample_rate: int) -> Tensor:
        """Codes [K, F] of audio, encoded by the codec (resampled to its rate first)."""
        if self.codec is None:
            raise ValueError("encoding audio needs a codec")
        audio = np.asarray(pcm, dtype=np.float32)
        if audio.ndim > 1:
            audio = audio.mean(axis=-1)
        if sample_rate != self.codec.sample_rate:
            from scipy.signal import resample_poly

            audio = resample_poly(audio, self.codec.sample_rate, sample_rate).astype(np.float32)
        with torch.no_grad():
            codes = self.codec.encode(torch.from_numpy(audio))
        return codes[: self.lm.config.n_codebooks].long()

    def clip(self, codes: np.ndarray | Tensor, steering: Steering) -> Clip:
        codes = torch.as_tensor(np.asarray(codes)).long()[: self.lm.config.n_codebooks]
        return Clip(codes, self.condition(steering))
