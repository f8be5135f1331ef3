"""Tuning benchmark: a simulated audience through the real service, one round of the loop, and
whether the tuned model pleases that audience more.

    python -m tests.bench.bench_tuning [--listeners 24] [--requests 140] [--per-request 10]
        [--room-rounds 3] [--eval-prompts 24] [--dpo-steps 150] [--dpo-lr 3e-5]
        [--probe var/checkpoints/probe.pt]

1. **Service**: the embedded default (SQLite, generation in the web process) in a temporary
   folder, served by uvicorn on a free port of 127.0.0.1, with the shipped model
   (generation/checkpoints/lm-small-v1.pt) registered and promoted as the base version. Every
   song request is answered with two candidates (CHORUS_AB_SHARE=1); rate limits and quotas
   are off (one machine plays a whole audience).
2. **Audience** (generation/tuning/audience.py + drive.py): listeners with a *hidden taste*
   over what the attribute probe measures (styles, tempo, mode) sign up through the API, request
   songs, and each request's two candidates are compared by --per-request listeners: each heard
   fairly (play, progress, complete or skip, thumbs, shares), then a vote for one
   (POST /api/v1/feedback/). In a room, listeners
   sign in through the login form, join over the websocket, hear each proposal's preview,
   report it as heard and vote for one (the service records the round as a choice set).
3. **One round of the loop** (`manage.py tune round`, the same command an operator runs):
   labels -> critic -> DPO on the base version's own pairs -> a candidate version in canary.
4. **Fresh generations** (seeds never heard): --eval-prompts prompts from the audience's own
   mix, 4 songs each, by the base and by the tuned model, judged by the hidden taste through the
   probe. ``like_rate_*`` is the mean like probability of single songs; ``best_of_4_gain`` is
   the critic's pick of 4 minus a single song (the tuned model and its critic).
5. **Guardrails** (generation/tuning/guardrails.py): codec-domain quality (NLL per code of real
   held-out clips) and prompt adherence (probe agreement on --guardrail-seeds songs per style)
   of the tuned model against the base, each allowed to be worse by 5 % at most.

Prints progress and sizes; the LAST line is JSON. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from contextlib import suppress
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BASE_LM = ROOT / "generation" / "checkpoints" / "lm-small-v1.pt"
DEFAULT_PROBE = ROOT / "var" / "checkpoints" / "probe.pt"
DEFAULT_MANIFEST = ROOT / "var" / "corpus" / "full" / "manifest.jsonl"

# What this audience asks for: mostly open requests that leave the style to the model (a mood,
# a moment), some naming a style. The same mix makes the fresh generations judged at the end.
OPEN_PROMPTS = (
    "something to listen to",
    "music for a quiet evening",
    "a short piece",
    "background music while I work",
    "surprise me",
    "music for a walk in the city",
    "an instrumental",
    "play me something new",
)
STYLE_PROMPTS = ("techno", "ambient", "solo piano", "house", "rock", "jazz trio", "folk song")
OPEN_SHARE = 0.7


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_prompt(rng: random.Random) -> str:
    return rng.choice(OPEN_PROMPTS if rng.random() < OPEN_SHARE else STYLE_PROMPTS)


def the_hidden_taste():
    """The audience's taste, fixed for the benchmark (the issue's example): likes minor keys
    and a fast tempo, loves techno and drum and bass, dislikes solo piano and ambient."""
    from generation.tuning.audience import Taste

    return Taste(
        styles={
            "techno": 2.0,
            "drum and bass": 2.0,
            "house": 1.0,
            "solo piano": -2.5,
            "ambient": -2.0,
            "romantic": -1.0,
        },
        bpm=140.0,
        bpm_octaves=0.35,
        bpm_weight=1.0,
        minor=1.5,
        bias=-0.5,
    )


# --- the service --------------------------------------------------------------------------------


class Server:
    """The embedded default under uvicorn, on its own temporary data; stopped with its group."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "webapp.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with suppress(OSError), urllib.request.urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310
                return
            if self.process.poll() is not None:
                raise RuntimeError("the server exited; see server.log")
            time.sleep(0.5)
        raise RuntimeError("the server did not come up in 120 s")

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def service_env(workdir: Path, threads: int) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "CHORUS_VAR_DIR": str(workdir),
        "CHORUS_SQLITE_PATH": str(workdir / "bench.sqlite3"),
        "CHORUS_MEDIA_ROOT": str(workdir / "media"),
        "CHORUS_TUNING_DIR": str(workdir / "tuning"),
        "CHORUS_GENERATION_BACKEND": "chorus",
        "CHORUS_AB_SHARE": "1",
        "CHORUS_RATELIMIT_ENABLED": "0",
        "CHORUS_QUOTA_DAILY_SONGS": "0",
        "CHORUS_QUOTA_DAILY_SECONDS": "0",
        "CHORUS_TORCH_THREADS": str(threads),
        "CHORUS_LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)  # the embedded default, whatever the caller's shell has
    return env


def manage(env: dict[str, str], *args: str, echo: bool = False) -> str:
    """Run manage.py with the bench's settings; its output (echoed as it comes when asked)."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if echo:
            print("    " + line.rstrip()[-200:], flush=True)
    if process.wait() != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{''.join(lines)[-3000:]}")
    return "".join(lines)


# --- the audience through the service -----------------------------------------------------------


class Judge:
    """What the probe hears in a clip, measured once per item."""

    def __init__(self, probe):
        self.probe = probe
        self.cache: dict[str, object] = {}

    def attributes(self, key: str, pcm: np.ndarray, sample_rate: int):
        from generation.tuning.audience import measure

        if key not in self.cache:
            self.cache[key] = measure(self.probe, pcm, sample_rate)
        return self.cache[key]


def run_songs(args, service, accounts, listeners, judge, rng, taste) -> dict:
    """Requests, two candidates each, heard by --per-request listeners; feedback through the
    API. Returns counts, and how often a vote agreed with the shared hidden taste's order of
    the two (listeners have their own tastes and moods: no critic of their pairs can do much
    better than this on the pairs votes decide)."""
    from generation.tuning.audience import Heard, like_probability

    requests = []
    for n in range(args.requests):
        owner = n % len(accounts)
        made = accounts[owner].request_song(pick_prompt(rng), args.duration)
        requests.append((owner, made))
    log(f"   {len(requests)} requests sent ({2 * len(requests)} songs to make)")
    pending: dict[int, list] = defaultdict(list)  # listener -> events not yet posted
    recorded = listens = 0
    agree: list[bool] = []
    started = time.monotonic()
    for i, (owner, made) in enumerate(requests):
        ids = made["exposure"]["candidates"]
        items = []
        for slot, song_id in enumerate(ids):
            song = accounts[owner].wait_ready(song_id, timeout_s=900)
            pcm, sample_rate = accounts[owner].song_audio(song_id)
            attributes = judge.attributes(f"song:{song_id}", pcm, sample_rate)
            items.append(
                Heard(
                    "song",
                    song_id,
                    song["audio_duration_s"],
                    attributes,
                    made["exposure"]["choice_set"],
                    slot,
                )
            )
        others = [n for n in range(len(listeners)) if n != owner]
        shared = [like_probability(taste, item.attributes) for item in items]
        for n in [owner, *rng.sample(others, args.per_request - 1)]:
            # asked which of the two they prefer: a fair hearing of each, then a vote
            choice, actions = listeners[n].choose(items)
            if shared[0] != shared[1]:
                agree.append(shared[choice] == max(shared))
            actions.append(listeners[n].vote(items[choice], max(a.at_s for a in actions) + 1))
            pending[n] += [a.as_api() for a in actions]
            listens += len(items)
            if len(pending[n]) >= 90:
                recorded += accounts[n].send_feedback(pending.pop(n))
        if (i + 1) % 10 == 0 or i + 1 == len(requests):
            rate = (i + 1) / (time.monotonic() - started)
            log(
                f"   {i + 1}/{len(requests)} requests heard, {listens} listens, "
                f"{recorded} events so far ({rate * 60:.1f} requests/min)"
            )
    for n, events in pending.items():
        recorded += accounts[n].send_feedback(events)
    return {
        "song_requests": len(requests),
        "song_listens": listens,
        "song_events": recorded,
        "votes_agree_with_taste": round(float(np.mean(agree)), 4) if agree else None,
    }


async def run_room(args, service, accounts, listeners, judge, rng) -> dict:
    """A room: the host proposes two ideas a round, listeners hear both previews, say so, and
    vote over the websocket; the host closes each round."""
    from generation.tuning.audience import Heard
    from generation.tuning.drive import RoomSocket

    host, guests = accounts[0], accounts[1 : 1 + args.room_listeners]
    for account in [host, *guests]:
        account.browser_login()
    room_id = host.create_room("Tuning bench", pick_prompt(rng), round_length_s=120)
    events = votes = 0
    async with RoomSocket(host, room_id) as host_ws:
        sockets = [await RoomSocket(g, room_id).__aenter__() for g in guests]
        try:
            await host_ws.expect({"snapshot"}, 30)
            # new ideas every round (a room may refuse a proposal it has heard before)
            fresh = rng.sample(STYLE_PROMPTS, min(len(STYLE_PROMPTS), 2 * args.room_rounds))
            for n in range(min(args.room_rounds, len(fresh) // 2)):
                ideas = fresh[2 * n : 2 * n + 2]
                proposals = []
                for idea in ideas:
                    answer = await host_ws.request({"type": "propose", "text": idea})
                    if answer.get("type") == "error" or "proposal" not in answer:
                        raise RuntimeError(f"the proposal {idea!r} was refused: {answer}")
                    proposals.append(answer["proposal"]["id"])
                previews = {}
                deadline = time.monotonic() + 120
                while len(previews) < len(proposals) and time.monotonic() < deadline:
                    frame = await host_ws.expect({"audition"}, deadline - time.monotonic())
                    if frame["proposal_id"] in proposals:
                        previews[frame["proposal_id"]] = frame
                items = []
                for pid in proposals:
                    frame = previews[pid]
                    pcm, sample_rate = host.audio_at(frame["url"])
                    attributes = judge.attributes(f"audition:{frame['id']}", pcm, sample_rate)
                    # the round's choice set is the server's (it records the votes at the close)
                    items.append(
                        Heard("audition", str(frame["id"]), frame["duration_s"], attributes)
                    )
                for k, (guest, ws) in enumerate(zip(guests, sockets, strict=True), start=1):
                    choice, actions = listeners[k].choose(items)
                    events += guest.send_feedback([a.as_api() for a in actions])
                    answer = await ws.request({"type": "vote", "proposal_id": proposals[choice]})
                    votes += answer["type"] == "ack"
                await host_ws.request({"type": "skip"})
                log(f"   room round {n + 1}/{args.room_rounds}: {ideas}, {votes} votes so far")
        finally:
            for ws in sockets:
                await ws.__aexit__(None, None, None)
    return {"room_rounds": args.room_rounds, "room_events": events, "room_votes": votes}


# --- fresh generations and guardrails -----------------------------------------------------------


def generate(
    checkpoint: Path, prompts: list[str], seeds_per_prompt: int, seed0: int, duration: float
):
    """Songs per prompt from a checkpoint, each prompt's seeds in one batch (as best-of-n
    makes them): [(prompt, [RenderedSong])]."""
    from generation.interface import SongRequest
    from generation.lm.songs import ChorusSongGenerator

    generator = ChorusSongGenerator.from_checkpoint(checkpoint)
    out = []
    for i, prompt in enumerate(prompts):
        requests = [
            SongRequest(prompt, duration, seed=seed0 + 1000 * i + k)
            for k in range(seeds_per_prompt)
        ]
        out.append((prompt, generator.render(requests)))
    return generator, out


def judge_generations(generations, judge, taste, critic, tag: str) -> dict:
    from generation.tuning.audience import like_probability

    singles, best, agree = [], [], []
    for p, (_, songs) in enumerate(generations):
        likes = [
            like_probability(taste, judge.attributes(f"{tag}:{p}:{k}", s.pcm, s.sample_rate))
            for k, s in enumerate(songs)
        ]
        singles += likes
        if critic is not None:
            scores = [critic(s.pcm, s.sample_rate) for s in songs]
            best.append(likes[int(np.argmax(scores))])
            for a in range(len(songs)):
                for b in range(a + 1, len(songs)):
                    if likes[a] != likes[b]:
                        agree.append((scores[a] > scores[b]) == (likes[a] > likes[b]))
    out = {"like_rate": float(np.mean(singles)), "songs": len(singles)}
    if critic is not None:
        out["best_of_4"] = float(np.mean(best))
        out["critic_taste_accuracy"] = float(np.mean(agree)) if agree else None
    return out


def guardrails(
    base_ckpt: Path,
    tuned_ckpt: Path,
    probe,
    manifest: Path,
    clips: int,
    duration: float,
    seeds: int = 3,
) -> dict:
    from generation.codec import DEFAULT_CHECKPOINT, Codec
    from generation.lm import TokenLM
    from generation.tuning import guardrails as rails

    codec = Codec.load(DEFAULT_CHECKPOINT)
    base, tuned = TokenLM.load(base_ckpt), TokenLM.load(tuned_ckpt)
    report = rails.check(
        base,
        tuned,
        codec,
        probe=probe,
        manifest=manifest if manifest.exists() else None,
        clips=clips,
        seeds=tuple(range(7, 7 + seeds)),
        seconds=duration,
    )
    return report.as_dict()


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listeners", type=int, default=24)
    parser.add_argument("--requests", type=int, default=140, help="song requests (2 songs each)")
    parser.add_argument("--per-request", type=int, default=10, help="listeners per request")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per song")
    parser.add_argument("--room-rounds", type=int, default=3)
    parser.add_argument("--room-listeners", type=int, default=6)
    parser.add_argument("--eval-prompts", type=int, default=24)
    parser.add_argument("--dpo-steps", type=int, default=150)
    parser.add_argument("--dpo-lr", type=float, default=3e-5)
    parser.add_argument("--dpo-beta", type=float, default=0.1)
    parser.add_argument("--dpo-frames", type=int, default=125, help="first frames scored (5 s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each process (on a shared machine, 1 avoids threads spinning "
        "while they wait for a core)",
    )
    parser.add_argument("--probe", type=Path, default=DEFAULT_PROBE)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--guardrail-clips", type=int, default=32)
    parser.add_argument(
        "--guardrail-seeds",
        type=int,
        default=3,
        help="songs per style for prompt adherence (one per style moves it by 6 %%)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    import torch

    from generation.probe import AttributeProbe
    from generation.tuning.audience import Habits, audience
    from generation.tuning.drive import Service

    # a SIGTERM ends the run through `finally` (the server stopped, the folder removed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    marks: dict[str, float] = {}
    torch.set_num_threads(args.threads)
    if not args.probe.exists():
        print(f"No probe at {args.probe}: run `make probe` first.", file=sys.stderr)
        return 2
    probe = AttributeProbe.load(args.probe)
    judge, taste, rng = Judge(probe), the_hidden_taste(), random.Random(args.seed)
    sizes = {
        k: getattr(args, k)
        for k in (
            "listeners",
            "requests",
            "per_request",
            "duration",
            "room_rounds",
            "room_listeners",
            "eval_prompts",
            "dpo_steps",
            "dpo_lr",
            "dpo_beta",
            "dpo_frames",
            "guardrail_seeds",
            "threads",
        )
    }
    log(f"sizes: {json.dumps(sizes)}")
    log(f"hidden taste: {taste}")

    workdir = Path(tempfile.mkdtemp(prefix="chorus-bench-tuning-"))
    env = service_env(workdir, args.threads)
    server = None
    try:
        log("1. service: migrate, register the shipped LM as the promoted base, start uvicorn")
        manage(env, "migrate", "--noinput")
        log("   " + manage(env, "tune", "register", str(BASE_LM), "--promote").strip())
        server = Server(workdir, env)
        service = Service(server.url, timeout_s=120)
        marks["service_s"] = time.monotonic() - began

        log(f"2. audience: {args.listeners} listeners sign up; {args.requests} requests")
        listeners = audience(taste, args.listeners, args.seed + 1, spread=0.5, habits=Habits())
        accounts = [  # accounts[n] is listeners[n]'s
            service.signup(x.name.replace("-", "_"), f"pw-{x.name}-{args.seed}-bench")
            for x in listeners
        ]
        counts = run_songs(args, service, accounts, listeners, judge, rng, taste)
        marks["songs_s"] = time.monotonic() - began
        if args.room_rounds:
            log(f"   a room: {args.room_listeners} listeners, {args.room_rounds} rounds")
            try:
                counts.update(asyncio.run(run_room(args, service, accounts, listeners, judge, rng)))
            except Exception as exc:  # the room is a part, not the point: say so and go on
                log(f"   room phase failed: {type(exc).__name__}: {exc}")
                counts["room_error"] = f"{type(exc).__name__}: {exc}"
        marks["audience_s"] = time.monotonic() - began
        server.stop()
        server = None

        log("3. one round of the loop: manage.py tune round")
        out = manage(
            env,
            "tune",
            "round",
            "--threads",
            str(args.threads),
            "--no-guardrails",
            "--steps",
            str(args.dpo_steps),
            "--lr",
            str(args.dpo_lr),
            "--beta",
            str(args.dpo_beta),
            "--frames",
            str(args.dpo_frames),
            "--eval-every",
            "10",
            echo=True,
        )
        round_ = json.loads(out.strip().splitlines()[-1])
        marks["round_s"] = time.monotonic() - began
        tuned = workdir / "tuning" / f"{round_['produced']}.pt" if round_["produced"] else None

        log(f"4. fresh generations: {args.eval_prompts} prompts x 4 seeds, base and tuned")
        from generation.lm.songs import critic_beside
        from generation.tuning.critic import load_critic

        eval_rng = random.Random(args.seed + 99)
        prompts = [pick_prompt(eval_rng) for _ in range(args.eval_prompts)]
        base_gen, base_songs = generate(BASE_LM, prompts, 4, 10_000_000, args.duration)
        critic = None
        if tuned is not None and critic_beside(tuned).exists():
            critic = load_critic(critic_beside(tuned), base_gen.engine.codec)
        base = judge_generations(base_songs, judge, taste, critic, "base")
        log(f"   base: {json.dumps(base)}")
        tuned_result = base
        if tuned is not None:
            _, tuned_songs = generate(tuned, prompts, 4, 10_000_000, args.duration)
            tuned_result = judge_generations(tuned_songs, judge, taste, critic, "tuned")
            log(f"   tuned: {json.dumps(tuned_result)}")
        marks["eval_s"] = time.monotonic() - began

        log("5. guardrails: code NLL on real clips, style adherence per style")
        rails = {"ok": None, "note": "no tuned model: nothing to guard"}
        if tuned is not None:
            rails = guardrails(
                BASE_LM,
                tuned,
                probe,
                args.manifest,
                args.guardrail_clips,
                args.duration,
                args.guardrail_seeds,
            )
        marks["guardrails_s"] = time.monotonic() - began

        metrics = round_.get("metrics") or {}
        critic_info = metrics.get("critic") or {}
        dpo = metrics.get("dpo") or {}
        events = counts.get("song_events", 0) + counts.get("room_events", 0)
        result = {
            "like_rate_base": round(base["like_rate"], 4),
            "like_rate_tuned": round(tuned_result["like_rate"], 4),
            "like_rate_gain_pp": round(100 * (tuned_result["like_rate"] - base["like_rate"]), 2),
            "reward_acc": critic_info.get("held_out_accuracy"),
            "reward_acc_taste": base.get("critic_taste_accuracy"),
            "best_of_4_gain": (
                round(tuned_result["best_of_4"] - tuned_result["like_rate"], 4)
                if "best_of_4" in tuned_result
                else None
            ),
            "best_of_4_gain_base": (
                round(base["best_of_4"] - base["like_rate"], 4) if "best_of_4" in base else None
            ),
            "guardrails_ok": rails.get("ok"),
            "quality_nll_base": rails.get("quality_base"),
            "quality_nll_tuned": rails.get("quality_tuned"),
            "adherence_base": rails.get("adherence_base"),
            "adherence_tuned": rails.get("adherence_tuned"),
            "events": events,
            **counts,
            "pairs": (round_.get("counts") or {}).get("pairs"),
            "dpo_pairs": [
                (round_.get("counts") or {}).get("dpo_train_pairs"),
                (round_.get("counts") or {}).get("dpo_held_out_pairs"),
            ],
            "dpo_held_out_judgements": (round_.get("counts") or {}).get("dpo_held_out_judgements"),
            "dpo_best_step": dpo.get("best_step"),
            "dpo_held_out_accuracy": (dpo.get("held_out") or {}).get("accuracy"),
            "round_status": round_.get("status"),
            "candidate": round_.get("produced"),
            "sizes": sizes,
            "phase_s": {k: round(v, 1) for k, v in marks.items()},
            "wall_s": round(time.monotonic() - began, 1),
        }
        print(json.dumps(result))
        return 0
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
