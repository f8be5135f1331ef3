"""MusicGen behind the `SongGenerator` interface, loaded from a local checkpoint directory only.

Pointing it at a real checkpoint
--------------------------------
Nothing here downloads. Fetch a checkpoint on a machine with network access, e.g.

    huggingface-cli download facebook/musicgen-small --local-dir musicgen-small

copy that directory to the server and point the service at it:

    CHORUS_MUSICGEN_DIR=/srv/models/musicgen-small  GENERATION_BACKEND=musicgen

The directory must hold what `save_pretrained` writes for a `MusicgenForConditionalGeneration`
(`config.json` with `"model_type": "musicgen"`, the weights, `generation_config.json`) plus the
text tokenizer files (`tokenizer.json` / `spiece.model`, `tokenizer_config.json`); the hub
snapshots of facebook/musicgen-{small,medium,large} and their stereo variants have all of them.
MusicGen-Melody is a different architecture and is refused. Everything is loaded with
`local_files_only=True`, and the model version is `musicgen:<directory name>`.

Design
------
MusicGen predicts K parallel streams of EnCodec codes at the codec's frame rate (50 Hz for the
32 kHz checkpoints) with a "delay" pattern, conditioned on T5 embeddings of the text. A song of
`duration_s` seconds needs `duration_s * frame_rate` frames; `generate()` is asked for that many
new tokens plus the K-1 steps the delay pattern costs.

The model was trained on 30 s excerpts, so long songs are made in windows (`window_s`, 30 s by
default). The first window is generated from the text alone. Each later window is a continuation:
the last `context_s` seconds of the audio so far are the audio prompt (`input_values`; the model
re-encodes them with EnCodec and continues the code stream), and only the audio after the prompt
is kept, joined to what came before with a short crossfade across the re-decoded prompt tail. So a
window adds `window_s - context_s` seconds, and 10 s to 10 min all work the same way (a 10 min song
is 1 + ceil((600 - 30) / 20) = 30 windows with the defaults).

Sampling follows the checkpoint's `generation_config.json` (top-k sampling for the released
checkpoints) with `guidance_scale` set from the request (classifier-free guidance; 1.0 or less
turns it off). Randomness comes from `torch.manual_seed(request.seed)` inside a forked RNG
state, so the same request on the same device and software gives the same PCM and the process's
global RNG is left untouched. Progress is reported every decoding step (through a stopping
criterion that never stops), as the fraction of all steps of all windows, ending at exactly 1.0.

`transformers` is imported only when a checkpoint is loaded or written, so importing this module
(e.g. for `MusicGenUnavailable`) stays cheap, and `generation.interface` does not import it at all.

`write_tiny_checkpoint(path)` writes a randomly initialised, few-hundred-kB MusicGen (T5, EnCodec
and decoder all tiny, 16 kHz, 25 Hz frames) with a locally built word-level tokenizer. It makes
noise, not music: it is for tests and benchmarks of the plumbing.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from generation.interface import (
    MAX_SONG_SECONDS,
    ProgressCallback,
    RenderedSong,
    SongRequest,
    register_song_generator,
)

if TYPE_CHECKING:
    from transformers import MusicgenForConditionalGeneration, PreTrainedTokenizerBase

ENV_DIR = "CHORUS_MUSICGEN_DIR"
REGISTRY_NAME = "musicgen"

DEFAULT_WINDOW_S = 30.0  # what the released checkpoints were trained on
DEFAULT_CONTEXT_S = 10.0  # audio prompt carried into the next window (audiocraft: 12)
CROSSFADE_S = 0.02
MAX_PROMPT_TOKENS = 256
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")  # fast or SentencePiece T5 tokenizer


class MusicGenUnavailable(RuntimeError):
    """The MusicGen backend cannot run: no directory configured, or not a usable checkpoint."""


def describe_prompt(request: SongRequest) -> str:
    """The text the model is conditioned on: the prompt, then the style tags, comma separated."""
    parts = [request.prompt.strip(), *(tag.strip() for tag in request.style_tags)]
    return ", ".join(part for part in parts if part)


def plan_windows(total_frames: int, window_frames: int, context_frames: int) -> list[int]:
    """How many new frames each window adds: a full first window, then window - context each."""
    if total_frames <= 0:
        return []
    step = window_frames - context_frames
    if step <= 0:
        raise ValueError(f"a window ({window_frames} frames) must outlast its context")
    plan = [min(total_frames, window_frames)]
    while sum(plan) < total_frames:
        plan.append(min(total_frames - sum(plan), step))
    return plan


def _step_counter(on_step: Callable[[], None]) -> Any:
    """A stopping criterion that never stops: `generate()` calls it once per decoding step.

    (Progress goes through the stopping criteria rather than a streamer because MusicGen's
    `generate()` in transformers 5 hands the streamer the prompt only, never the steps.)
    """
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StepCounter(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
            on_step()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StepCounter()])


def check_checkpoint_dir(directory: str | os.PathLike[str]) -> Path:
    """The checkpoint directory as a Path, or MusicGenUnavailable saying what is wrong with it."""
    path = Path(directory).expanduser()
    hint = (
        "point it at a directory holding a MusicGen checkpoint saved with save_pretrained, "
        "e.g. a copy of the facebook/musicgen-small snapshot (see generation/musicgen.py)"
    )
    if not path.is_dir():
        raise MusicGenUnavailable(
            f"MusicGen checkpoint directory {str(path)!r} does not exist; {hint}"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise MusicGenUnavailable(
            f"{str(path)!r} has no config.json, so it is no checkpoint; {hint}"
        )
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError) as error:
        raise MusicGenUnavailable(f"cannot read {str(config_file)!r}: {error}") from error
    if model_type != "musicgen":
        raise MusicGenUnavailable(
            f"{str(path)!r} holds a {model_type!r} checkpoint, not 'musicgen' "
            f"(MusicGen-Melody and other variants are not supported); {hint}"
        )
    return path


class MusicGenGenerator:
    """A `SongGenerator` that renders songs with a local MusicGen checkpoint.

    The checkpoint is checked and loaded when the generator is made, so a bad directory fails at
    once (with MusicGenUnavailable) rather than on the first song.
    """

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        window_s: float = DEFAULT_WINDOW_S,
        context_s: float = DEFAULT_CONTEXT_S,
    ) -> None:
        if not 0 <= context_s < window_s:
            raise ValueError(f"need 0 <= context_s < window_s, got {context_s} and {window_s}")
        self.checkpoint_dir = check_checkpoint_dir(checkpoint_dir)
        self.model_version = f"musicgen:{self.checkpoint_dir.name}"
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.tokenizer = _load(self.checkpoint_dir, self.device)

        audio_config = self.model.config.audio_encoder
        self.sample_rate: int = int(audio_config.sampling_rate)
        self.frame_rate: int = int(audio_config.frame_rate)
        self.hop_length: int = int(audio_config.hop_length)
        self.channels: int = int(self.model.config.decoder.audio_channels)
        # The delay pattern offsets codebook k by k steps, so the last codebook lags by K' - 1.
        self.delay_steps: int = self.model.decoder.num_codebooks // self.channels - 1

        self.window_frames = max(1, round(window_s * self.frame_rate))
        self.context_frames = round(context_s * self.frame_rate)
        if self.context_frames >= self.window_frames:
            raise ValueError(
                f"at {self.frame_rate} Hz, context_s {context_s} fills window_s {window_s}"
            )
        self._lock = threading.Lock()  # one song at a time: generate() and the RNG fork are global

    @staticmethod
    def _guidance(request: SongRequest) -> float:
        """The request's scale, or MusicGen's usual 3.0 when the request leaves it to us."""
        return 3.0 if request.guidance is None else float(request.guidance)

    def generate_song(self, request: SongRequest, progress: ProgressCallback) -> RenderedSong:
        if not 0 < request.duration_s <= MAX_SONG_SECONDS:
            raise ValueError(f"duration must be in (0, {MAX_SONG_SECONDS}] s: {request.duration_s}")
        text = describe_prompt(request)
        target_samples = round(request.duration_s * self.sample_rate)
        total_frames = math.ceil(target_samples / self.hop_length)
        plan = plan_windows(total_frames, self.window_frames, self.context_frames)
        total_steps = sum(frames + self.delay_steps for frames in plan)
        done = 0

        def on_step() -> None:
            nonlocal done
            done += 1
            progress(min(done / total_steps, 0.999))  # 1.0 only once the song is assembled

        inputs = self.tokenizer(
            [text], return_tensors="pt", padding=True, truncation=True, max_length=MAX_PROMPT_TOKENS
        ).to(self.device)
        fork_devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=fork_devices), torch.inference_mode():
            torch.manual_seed(request.seed)
            audio = np.zeros((self.channels, 0), dtype=np.float32)
            for index, new_frames in enumerate(plan):
                carried = self.context_frames * self.hop_length if index else 0
                context = audio[:, -carried:] if carried else None
                audio = self._extend(audio, context, inputs, new_frames, request, on_step)

        pcm = audio.mean(axis=0)[:target_samples]
        pcm = np.clip(np.nan_to_num(pcm), -1.0, 1.0).astype(np.float32)
        progress(1.0)
        return RenderedSong(
            pcm=pcm,
            sample_rate=self.sample_rate,
            model_version=self.model_version,
            provenance={
                "generator": REGISTRY_NAME,
                "model_dir": str(self.checkpoint_dir),
                "prompt": request.prompt,
                "style_tags": list(request.style_tags),
                "text": text,
                "seed": request.seed,
                "guidance": self._guidance(request),
                "windows": len(plan),
                "window_s": self.window_frames / self.frame_rate,
                "context_s": self.context_frames / self.frame_rate,
                "frame_rate": self.frame_rate,
                "device": str(self.device),
            },
        )

    def _extend(
        self,
        audio: np.ndarray,
        context: np.ndarray | None,
        inputs: Any,
        new_frames: int,
        request: SongRequest,
        on_step: Callable[[], None],
    ) -> np.ndarray:
        """`audio` ([channels, samples], changed in place) and one more window of `new_frames`."""
        kwargs: dict[str, Any] = {}
        if context is not None:
            kwargs["input_values"] = torch.from_numpy(context[None]).to(
                self.device, self.model.dtype
            )
        generated = self.model.generate(
            **inputs,
            **kwargs,
            do_sample=True,
            guidance_scale=self._guidance(request),
            max_new_tokens=new_frames + self.delay_steps,
            stopping_criteria=_step_counter(on_step),
        )
        out = generated[0].float().cpu().numpy()  # [channels, prompt + new samples]
        new_samples = new_frames * self.hop_length
        new = out[:, -new_samples:]
        if "input_values" in kwargs:
            # The output starts with the prompt re-decoded: fade the old tail into it, so the seam
            # lies inside audio that both versions share.
            fade = min(
                round(CROSSFADE_S * self.sample_rate), audio.shape[-1], out.shape[-1] - new_samples
            )
            if fade > 0:
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                redecoded = out[:, -new_samples - fade : -new_samples]
                audio[:, -fade:] = audio[:, -fade:] * (1 - ramp) + redecoded * ramp
        return np.concatenate([audio, new], axis=-1)


def _load(
    directory: Path, device: torch.device
) -> tuple[MusicgenForConditionalGeneration, PreTrainedTokenizerBase]:
    try:
        from transformers import AutoTokenizer, MusicgenForConditionalGeneration
    except ImportError as error:  # pragma: no cover - transformers is a declared dependency
        raise MusicGenUnavailable("the MusicGen backend needs the transformers package") from error
    try:
        model = MusicgenForConditionalGeneration.from_pretrained(  # nosec B615 # local files only
            directory, local_files_only=True
        )
    except (OSError, ValueError) as error:
        raise MusicGenUnavailable(
            f"cannot load the MusicGen model in {str(directory)!r}: {error}"
        ) from error
    # Checked first: with no files at all, AutoTokenizer quietly makes an untrained tokenizer.
    missing = not any((directory / name).is_file() for name in TOKENIZER_FILES)
    try:
        if missing:
            raise OSError(f"none of {', '.join(TOKENIZER_FILES)} is there")
        tokenizer = AutoTokenizer.from_pretrained(  # nosec B615 # local files only
            directory, local_files_only=True
        )
    except (OSError, ValueError) as error:
        raise MusicGenUnavailable(
            f"cannot load the text tokenizer in {str(directory)!r} (copy tokenizer.json, "
            f"spiece.model and tokenizer_config.json from the checkpoint's snapshot): {error}"
        ) from error
    return model.to(device).eval(), tokenizer


def from_env(**kwargs: Any) -> MusicGenGenerator:
    """A generator for the checkpoint directory named by $CHORUS_MUSICGEN_DIR."""
    directory = os.environ.get(ENV_DIR, "").strip()
    if not directory:
        raise MusicGenUnavailable(
            f"the musicgen backend needs ${ENV_DIR}: the path of a local MusicGen checkpoint "
            "directory (e.g. a copy of the facebook/musicgen-small snapshot)"
        )
    return MusicGenGenerator(directory, **kwargs)


def register(
    checkpoint_dir: str | os.PathLike[str] | None = None,
    *,
    name: str = REGISTRY_NAME,
    **kwargs: Any,
) -> None:
    """Register the backend as `name`: for `checkpoint_dir`, or $CHORUS_MUSICGEN_DIR when None.

    The generator is made on first use. Re-registering drops an instance already made under
    `name`, so the next `get_song_generator(name)` loads the new checkpoint.
    """
    from generation import interface

    if checkpoint_dir is None:
        register_song_generator(name, lambda: from_env(**kwargs))
    else:
        register_song_generator(name, lambda: MusicGenGenerator(checkpoint_dir, **kwargs))
    interface._INSTANCES.pop(name, None)


# --- a tiny random checkpoint, for tests and benchmarks -------------------------------------------

TINY_VOCABULARY = (  # the words the tiny tokenizer knows; anything else is <unk>
    "a an the and of with in on for slow fast calm upbeat happy sad dark bright warm soft loud "
    "piano guitar drums bass synth strings violin voice choir ambient jazz rock pop folk "
    "electronic classical lofi song music track beat melody chords rhythm groove"
)
TINY_PAD, TINY_EOS, TINY_UNK = "<pad>", "</s>", "<unk>"


def write_tiny_checkpoint(
    path: str | os.PathLike[str],
    *,
    num_codebooks: int = 4,
    codebook_size: int = 64,
    sampling_rate: int = 16_000,
    seed: int = 0,
) -> Path:
    """Write a tiny randomly initialised MusicGen checkpoint (model + tokenizer) to `path`.

    T5 text encoder: d_model 32, one layer, word-level vocabulary of ~50 words. EnCodec: hidden
    16, hop 640 (25 Hz at 16 kHz), `num_codebooks` random codebooks of `codebook_size` codes.
    Decoder: hidden 32, two layers. Nothing is downloaded; the tokenizer is built from a word list
    with the `tokenizers` library. Returns the directory.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
    )

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)

    vocab = {TINY_PAD: 0, TINY_EOS: 1, TINY_UNK: 2}
    for word in TINY_VOCABULARY.split():
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=TINY_UNK))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {TINY_EOS}", special_tokens=[(TINY_EOS, vocab[TINY_EOS])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=TINY_PAD,
        eos_token=TINY_EOS,
        unk_token=TINY_UNK,
        model_max_length=512,
    )

    hop = 640
    if sampling_rate % hop:
        raise ValueError(f"sampling_rate must be a multiple of the hop ({hop}): {sampling_rate}")
    # The bandwidth that buys exactly num_codebooks quantizers (a hair over, against rounding).
    bandwidth_kbps = num_codebooks * math.log2(codebook_size) * sampling_rate / hop / 1000 + 1e-6
    text_config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    audio_config = EncodecConfig(
        sampling_rate=sampling_rate,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        num_lstm_layers=1,
        upsampling_ratios=[8, 5, 4, 4],  # 8 * 5 * 4 * 4 = hop
        codebook_size=codebook_size,
        target_bandwidths=[bandwidth_kbps],  # exactly num_codebooks quantizers
        use_causal_conv=False,
        use_conv_shortcut=False,
        normalize=False,
    )
    decoder_config = MusicgenDecoderConfig(
        vocab_size=codebook_size,
        max_position_embeddings=2048,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        hidden_size=32,
        num_codebooks=num_codebooks,
        pad_token_id=codebook_size,
        bos_token_id=codebook_size,
    )
    config = MusicgenConfig(
        text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config)
        # EnCodec initialises its codebooks to zeros (they are learned); random ones make
        # different codes sound different.
        for name, buffer in model.audio_encoder.named_buffers():
            if name.endswith("codebook.embed"):
                buffer.normal_()
                model.audio_encoder.get_buffer(name.replace(".embed", ".embed_avg")).copy_(buffer)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=codebook_size,
        pad_token_id=codebook_size,
        bos_token_id=codebook_size,
        do_sample=True,
        top_k=16,
        guidance_scale=3.0,
        max_length=1500,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    EncodecFeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0
    ).save_pretrained(directory)
    return directory
