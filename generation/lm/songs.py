"""Songs from a prompt with the token LM: form, prompt expansion, Influence and best-of-n.

A song is a stream run for as long as the song lasts (10 s to 10 min), so long pieces use the
same sliding context as rooms. What makes it a *song* rather than an excerpt:

* **Form.** The corpus's clips carry their section (intro, build, drop, breakdown, outro for the
  procedural styles; opening, middle, ending for scored music), and the section is a control, so a
  song follows a plan of sections scaled to its length (:func:`section_plan`) and changes
  section exactly where the plan says, ramping over one chunk.
* **Prompt expansion** (on by default; ``expand_prompt=False`` turns it off). A short prompt such
  as "chill beats" is matched against the styles the model knows (the mean MiniLM embedding of
  each style's captions, stored in the checkpoint), and the controls the user left unset are
  filled in from the nearest style: tempo, energy, brightness, mode and its usual instruments.
  The expansion is returned in the provenance, so the UI can show what was added.
* **Influence** (``reference_path``): the reference clip is encoded by the codec and its last
  seconds become the stream's starting context (the model *continues* it; the reference itself is
  not part of the output). We chose tokens-as-context over a learned embedding of the tokens
  because it needs no extra training and carries timbre, tempo and key at once; its effect is
  measured by ``influence_gain`` in ``python -m generation.eval lm``.
* **Best-of-n** (``candidates=n``): n seeds are generated in one batch and a critic
  (``critic(pcm, sr) -> score``; the reward model of the tuning loop plugs in here: a model
  version's ``<name>.critic.pt`` beside its checkpoint, or ``CHORUS_CRITIC=path``; see
  generation/tuning/critic.py) picks one; without a critic the first is kept. A share of picks
  (``explore_share``) is made at random instead, so the critic can be judged off-policy: the
  provenance records every score, the policy that picked and the chosen one's propensity.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile
import torch

from generation.interface import ProgressCallback, RenderedSong, SongRequest
from generation.lm.stream import Engine, Sampling
from generation.steering import Controls, Steering

Critic = Callable[[np.ndarray, int], float]

PROCEDURAL_FORM = (
    ("intro", 0.1),
    ("build", 0.15),
    ("drop", 0.25),
    ("breakdown", 0.15),
    ("build", 0.1),
    ("drop", 0.15),
    ("outro", 0.1),
)
SCORED_FORM = (("opening", 0.3), ("middle", 0.45), ("ending", 0.25))
REFERENCE_SECONDS = 6.0


def section_plan(duration_s: float, form: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:
    """(section, start second) for a song of this length: the form's shares, with short songs
    keeping only the sections that matter most (a 10 s song is a build into a drop)."""
    if duration_s < 25 and form is PROCEDURAL_FORM:
        form = (("build", 0.4), ("drop", 0.6))
    elif duration_s < 60 and form is PROCEDURAL_FORM:
        form = (("intro", 0.15), ("build", 0.25), ("drop", 0.45), ("outro", 0.15))
    plan, start = [], 0.0
    for name, share in form:
        plan.append((name, start))
        start += share * duration_s
    return plan


def section_at(plan: list[tuple[str, float]], second: float) -> str:
    current = plan[0][0]
    for name, start in plan:
        if second >= start:
            current = name
    return current


def nearest_style(engine: Engine, prompt: str) -> tuple[dict | None, float]:
    """The style (from the checkpoint's table) whose captions are nearest the prompt."""
    styles = getattr(engine.model, "extra", {}).get("styles") or []
    if not styles or not prompt.strip():
        return None, 0.0
    query = engine.text.encode([prompt])[0]
    scores = np.array([s["embedding"] for s in styles], dtype=np.float32) @ query
    best = int(np.argmax(scores))
    return styles[best], float(scores[best])


def expand(engine: Engine, prompt: str, controls: Controls) -> tuple[Controls, dict]:
    """Unset controls filled from the style nearest to the prompt; (controls, what was added)."""
    best, similarity = nearest_style(engine, prompt)
    if best is None:
        return controls, {}
    added: dict = {"style": best["style"], "similarity": round(similarity, 3)}
    fill: dict = {}
    if controls.bpm is None:
        fill["bpm"] = round(best["bpm"])
    if controls.energy is None:
        fill["energy"] = round(best["energy"], 2)
    if controls.brightness is None:
        fill["brightness"] = round(best["brightness"], 2)
    if controls.mode is None:
        fill["mode"] = "minor" if best["minor_share"] >= 0.5 else "major"
    if not controls.instruments_in and not controls.instruments_out:
        fill["instruments_in"] = tuple(best["instruments"][:3])
    added.update({k: list(v) if isinstance(v, tuple) else v for k, v in fill.items()})
    return replace(controls, **fill), added


def pick_candidate(
    scores: Sequence[float | None], explore_share: float, rng: random.Random
) -> tuple[int, str, float]:
    """Best-of-n's pick: (index, policy, propensity). The critic's favourite, except that a share
    ``explore_share`` of picks is uniform at random; the propensity is the chance the pick had,
    for off-policy evaluation: (1 - share) * [it is the favourite] + share / n."""
    n = len(scores)
    if n == 1 or any(s is None for s in scores):
        return 0, "first", 1.0
    best = int(np.argmax(scores))
    if rng.random() < explore_share:
        chosen, policy = rng.randrange(n), "random"
    else:
        chosen, policy = best, "critic"
    return chosen, policy, (1.0 - explore_share) * (chosen == best) + explore_share / n


def critic_beside(checkpoint: str | Path) -> Path:
    """Where a model version's critic lives: ``<name>.critic.pt`` beside ``<name>.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.critic.pt")


class ChorusSongGenerator:
    """The project's own model behind the SongGenerator interface (registry name "chorus")."""

    def __init__(self, engine: Engine | None = None, critic: Critic | None = None):
        self.engine = engine or Engine.load()
        self.critic = critic
        if critic is None and os.environ.get("CHORUS_CRITIC"):  # a saved reward model
            from generation.tuning.critic import load_critic

            self.critic = load_critic(os.environ["CHORUS_CRITIC"], self.engine.codec)
        self.model_version = self.engine.model_version

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path) -> ChorusSongGenerator:
        """A registered model version: its LM checkpoint (the version is named by the file's
        stem) and the critic trained beside it, if there is one."""
        engine = Engine.load(checkpoint)
        critic = None
        if critic_beside(checkpoint).exists():
            from generation.tuning.critic import load_critic

            critic = load_critic(critic_beside(checkpoint), engine.codec)
        return cls(engine, critic)

    def generate_song(self, request: SongRequest, progress: ProgressCallback) -> RenderedSong:
        n = max(1, request.candidates)
        songs = self.render([replace(request, seed=request.seed + i) for i in range(n)], progress)
        scores = [self.critic(s.pcm, s.sample_rate) if self.critic else None for s in songs]
        chosen, policy, propensity = pick_candidate(
            scores, request.explore_share, random.Random(request.seed)
        )
        song = songs[chosen]
        song.provenance["best_of"] = {
            "n": n,
            "chosen": chosen,
            "scores": scores,
            "policy": policy,
            "propensity": round(propensity, 6),
        }
        progress(1.0)
        return song

    def render(
        self, requests: Sequence[SongRequest], progress: ProgressCallback | None = None
    ) -> list[RenderedSong]:
        """Songs for several requests of one length, generated side by side in batched model
        calls (best-of-n's candidates; evaluations). Each is what it would be alone, up to
        float rounding in the batch."""
        engine = self.engine
        if len({r.duration_s for r in requests}) != 1:
            raise ValueError("songs rendered together must have one length")
        plans = [self._plan(r) for r in requests]
        sessions = []
        for request, (_, steering_at, _) in zip(requests, plans, strict=True):
            session = engine.session(
                request.seed, steering_at(0.0), Sampling(guidance=request.guidance)
            )
            if request.reference_path:
                session.prime(self._reference_codes(request.reference_path))
            sessions.append(session)
        total = int(round(requests[0].duration_s * engine.sample_rate))
        pieces: list[list[np.ndarray]] = [[] for _ in requests]
        codes: list[list[np.ndarray]] = [[] for _ in requests]
        current = [s.steering for s in sessions]
        done = 0
        while done < total:
            wanted = [steering_at(done / engine.sample_rate) for _, steering_at, _ in plans]
            asks = [w if w != c else None for w, c in zip(wanted, current, strict=True)]
            for i, chunk in enumerate(engine.next_chunks(sessions, asks)):
                pieces[i].append(chunk.pcm)
                codes[i].append(chunk.codes)
            current = wanted
            done += len(pieces[0][-1])
            if progress is not None:
                progress(min(1.0, done / total))
        songs = []
        for i, (request, (controls, _, info)) in enumerate(zip(requests, plans, strict=True)):
            pcm = np.concatenate(pieces[i])[:total]
            fade = min(len(pcm), engine.sample_rate // 2)  # the last half second fades out
            pcm[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            frames = int(np.ceil(len(pcm) / engine.sample_rate * engine.frame_rate))
            songs.append(
                RenderedSong(
                    pcm=pcm.astype(np.float32),
                    sample_rate=engine.sample_rate,
                    model_version=self.model_version,
                    provenance={
                        "generator": "chorus",
                        **info,
                        "seed": request.seed,
                        "guidance": sessions[i].sampling.guidance,
                        "controls": controls.as_dict(),
                        "reference": bool(request.reference_path),
                    },
                    codes=np.concatenate(codes[i], axis=-1)[:, :frames],
                )
            )
        return songs

    def _plan(self, request: SongRequest):
        """(controls, steering at a second, provenance) of one request: its prompt, expanded
        controls and section plan."""
        engine = self.engine
        prompt = ", ".join([request.prompt, *request.style_tags]).strip(", ")
        controls = Controls.from_dict(dict(request.controls))
        expansion: dict = {}
        if request.expand_prompt:
            controls, expansion = expand(engine, prompt, controls)
        style, _ = nearest_style(engine, prompt)
        scored = style is not None and style["source"].startswith("music21")
        form = SCORED_FORM if scored else PROCEDURAL_FORM
        plan = section_plan(request.duration_s, form)
        known = set(engine.model.config.sections)
        plan = [(name, start) for name, start in plan if name in known] or [(None, 0.0)]

        def steering_at(second: float) -> Steering:
            section = controls.section or section_at(plan, second)
            return Steering(((prompt, 1.0),) if prompt else (), replace(controls, section=section))

        return controls, steering_at, {"prompt": prompt, "expansion": expansion, "sections": plan}

    def _reference_codes(self, path: str) -> torch.Tensor:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate != self.engine.sample_rate:
            from scipy.signal import resample_poly

            audio = resample_poly(audio, self.engine.sample_rate, rate).astype(np.float32)
        audio = audio[-int(REFERENCE_SECONDS * self.engine.sample_rate) :]
        codes = self.engine.codec.encode(torch.from_numpy(audio).to(self.engine.device)).cpu()
        return codes[: self.engine.model.config.n_codebooks]
