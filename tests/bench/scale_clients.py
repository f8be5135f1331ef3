"""Room clients for the multi-host test (bench_scale.py) and the soak (soak.py): one asyncio
process drives many sockets, each a signed-out participant of its own, across several rooms
and web nodes. Run by those scripts (in the lab's `load` host), never by the suite:

    python -m tests.bench.scale_clients CONFIG OUT

CONFIG is a JSON file: `clients` (each: session, room, node, `url` (the room's socket on its
node), `origin` (the node's http://address:port), and what it does besides listening:
`vote_every_s`, `propose_every_s`, `reconnect_every_s`, `fetch`), `ideas`, `stop_file`,
`ready_file`, `max_s`. Every client listens until `stop_file` appears
(or `max_s` passes), and records every chunk it is told of (frames and snapshots) with the
moment it arrived; OUT gets all of it as JSON, for tests/bench/listening.py to judge.

Besides listening, a client may
- be the room's host (`host`): it puts `host_ideas` (3) ideas on the ballot of every new round;
- vote for a random proposal of the open ballot, on average every `vote_every_s`;
- propose an idea of its own, on average every `propose_every_s`;
- leave and come back, on average every `reconnect_every_s` (a page reload);
- fetch each chunk's audio over HTTP as soon as it is announced (`fetch`), as a browser does.

A client whose socket is closed by anything but itself notes it (an error) and reconnects
after a second, as the browser app does. The sockets and frames are those of
tests/bench/rooms_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from tests.bench.rooms_clients import (
    CONNECT_CONCURRENCY,
    Listener,
    kind_of,
    open_socket,
    own_cpu_s,
)

RECONNECT_AFTER_S = 1.0
HOST_IDEAS = ("add strings", "slower and darker", "more drums")
FETCH_TIMEOUT_S = 10.0
# Answers that tell a client it raced the ballot (a round closed as the vote left), not faults.
RACE_CODES = frozenset({"round_closed"})


@dataclass
class RoomClient(Listener):
    spec: dict = field(default_factory=dict)
    connections: list[list] = field(default_factory=list)  # [opened, closed, how]
    receipts: list[tuple[int, int, float]] = field(default_factory=list)  # chunk id, rev, at
    ballot: set[int] = field(default_factory=set)
    round_number: int = 0
    new_round: asyncio.Event = field(default_factory=asyncio.Event)
    lost: list[str] = field(default_factory=list)  # sockets closed under the client
    connect_failures: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    proposals: dict[str, int] = field(default_factory=lambda: {"sent": 0, "acked": 0})
    proposal_errors: dict[str, int] = field(default_factory=dict)
    fetches: list[tuple[int, int, float, float, int]] = field(default_factory=list)
    origin_s: float | None = None  # the room's timeline origin, from the snapshot
    tasks: set = field(default_factory=set)
    frames_per_s: dict = field(default_factory=dict)  # second -> node -> frames (shared)

    def take(self, raw: str, now: float) -> None:
        second = self.frames_per_s.setdefault(int(now), {})
        second[self.spec["node"]] = second.get(self.spec["node"], 0) + 1
        kind = kind_of(raw)
        if kind == "chunk":
            frame = json.loads(raw)
            self.frames += 1
            self.receipts.append((frame["id"], frame.get("revision", 0), now))
            if self.spec.get("fetch"):
                task = asyncio.get_running_loop().create_task(self.fetch(frame))
                self.tasks.add(task)  # held until done: the loop keeps only weak references
                task.add_done_callback(self.tasks.discard)
            return
        if kind == "snapshot":
            frame = json.loads(raw)
            self.frames += 1
            self.origin_s = frame["room"]["timeline_origin"]
            for chunk in frame.get("chunks", []):
                self.receipts.append((chunk["id"], chunk.get("revision", 0), now))
            self.ballot = {p["id"] for p in frame.get("ballot", []) if p["status"] == "approved"}
            self.round_number = (frame.get("round") or {}).get("number", 0)
            return
        if kind == "proposal":
            proposal = json.loads(raw)["proposal"]
            if proposal.get("status") == "approved":
                self.ballot.add(proposal["id"])
            else:
                self.ballot.discard(proposal["id"])
        elif kind == "round_result":
            frame = json.loads(raw)
            self.ballot = {p["id"] for p in frame.get("ballot", [])}
            self.round_number = frame["next_round"]["number"]
            self.new_round.set()
        elif kind in ("ack", "error") and str(json.loads(raw).get("id", "")).startswith("p"):
            frame = json.loads(raw)
            self.frames += 1
            if kind == "ack":
                self.proposals["acked"] += 1
            else:
                code = frame.get("code", "?")
                self.proposal_errors[code] = self.proposal_errors.get(code, 0) + 1
            return
        super().take(raw, now)

    # -- fetching audio, as a browser does ------------------------------------------------------

    async def fetch(self, frame: dict) -> None:
        url = self.spec["origin"] + frame["url"]
        status, size = 0, 0
        try:
            status, size = await asyncio.to_thread(_get, url)
        except Exception as exc:  # counted: the status stays 0
            self.exceptions.append(f"fetch: {exc!r}"[:200])
        start_at = (self.origin_s or 0.0) + frame["start_s"]
        self.fetches.append((frame["sequence"], status, time.time(), start_at, size))

    # -- a connection's life --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, gate: asyncio.Semaphore) -> None:
        rng = random.Random(self.session)
        first = True
        while not stop.is_set():
            try:
                if first:  # the crowd's first connections go a hundred at a time
                    async with gate:
                        self.ws = await open_socket(self.spec, self.session)
                else:
                    self.ws = await open_socket(self.spec, self.session)
            except Exception as exc:
                self.connect_failures.append(repr(exc)[:200])
                await _sleep_or_stop(stop, RECONNECT_AFTER_S)
                continue
            finally:
                first = False
            self.connections.append([time.time(), None, ""])
            self.connections[-1][2] = await self.connected(stop, rng)
            self.connections[-1][1] = time.time()
            self.ws = None
            if self.connections[-1][2].startswith("lost"):
                await _sleep_or_stop(stop, RECONNECT_AFTER_S)

    async def connected(self, stop: asyncio.Event, rng: random.Random) -> str:
        """Listen (and act) until the socket closes, the run stops or it is time to reload;
        how it ended."""
        ws = self.ws
        reader = asyncio.create_task(self.read(ws))
        actors = [asyncio.create_task(self.act(ws, rng))]
        stopping = asyncio.create_task(stop.wait())
        every = self.spec.get("reconnect_every_s") or 0
        timeout = rng.expovariate(1 / every) if every else None
        done, _ = await asyncio.wait(
            {reader, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in actors:
            task.cancel()
        stopping.cancel()
        if reader in done:
            how = f"lost: {reader.result()}"
            self.lost.append(how[:200])
            return how
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        return "stop" if stop.is_set() else "reload"

    async def read(self, ws) -> str:
        try:
            async for raw in ws:
                try:
                    self.take(raw, time.time())
                except Exception as exc:  # a frame we could not read: counted, go on
                    self.exceptions.append(f"frame: {exc!r}"[:200])
        except Exception as exc:
            return repr(exc)[:200]
        return f"closed {ws.close_code}"

    async def act(self, ws, rng: random.Random) -> None:
        """Votes and proposals at random moments (Poisson), while this socket is open."""
        try:
            await self._act(ws, rng)
        except Exception as exc:  # the socket closed under a send: the reader notes why
            if ws.close_code is None:
                self.exceptions.append(f"act: {exc!r}"[:200])

    async def _act(self, ws, rng: random.Random) -> None:
        if self.spec.get("host"):
            return await self._host(ws)
        vote_every = self.spec.get("vote_every_s") or 0
        propose_every = self.spec.get("propose_every_s") or 0
        ideas = self.spec.get("ideas") or ["something new"]
        next_vote = time.time() + rng.expovariate(1 / vote_every) if vote_every else None
        next_idea = time.time() + rng.expovariate(1 / propose_every) if propose_every else None
        while next_vote is not None or next_idea is not None:
            now = time.time()
            wake = min(t for t in (next_vote, next_idea) if t is not None)
            await asyncio.sleep(max(0.0, wake - now))
            if next_vote is not None and time.time() >= next_vote:
                next_vote = time.time() + rng.expovariate(1 / vote_every)
                if self.ballot:
                    await self.vote(ws, rng.choice(sorted(self.ballot)))
            if next_idea is not None and time.time() >= next_idea:
                next_idea = time.time() + rng.expovariate(1 / propose_every)
                text = f"{rng.choice(ideas)} ({self.session[:6]} {self.proposals['sent'] + 1})"
                await self.propose(ws, text)

    async def _host(self, ws) -> None:
        """The room's host keeps a ballot: the first ideas again in every new round (voted
        proposals stay in their round, so a new round opens with an empty ballot)."""
        ideas = HOST_IDEAS[: self.spec.get("host_ideas", len(HOST_IDEAS))]
        while True:
            if len(self.ballot) < len(ideas):
                for idea in ideas:
                    await self.propose(ws, f"{idea} (round {self.round_number})")
            self.new_round.clear()
            await self.new_round.wait()

    async def propose(self, ws, text: str) -> None:
        self.proposals["sent"] += 1
        frame = {"type": "propose", "id": f"p{self.proposals['sent']}", "text": text}
        await ws.send(json.dumps(frame))

    async def vote(self, ws, proposal: int) -> None:
        message_id = len(self.history) + 1
        self.sent[message_id] = (time.time(), proposal)
        self.history.append((message_id, proposal))
        await ws.send(json.dumps({"type": "vote", "id": message_id, "proposal_id": proposal}))

    def result(self) -> dict:
        races = {c: n for c, n in self.errors.items() if c in RACE_CODES}
        return {
            "session": self.session,
            "room": self.spec["room"],
            "node": self.spec["node"],
            "host": bool(self.spec.get("host")),
            "origin": self.origin_s,
            "connections": self.connections,
            "receipts": self.receipts,
            "errors": {c: n for c, n in self.errors.items() if c not in RACE_CODES},
            "races": races,
            "lost": self.lost,
            "connect_failures": self.connect_failures,
            "exceptions": self.exceptions,
            "acked": self.acked,
            "history": self.history,
            "refused": self.refused,
            "unanswered": len(self.sent),
            "proposals": self.proposals,
            "proposal_errors": self.proposal_errors,
            "fetches": self.fetches,
            "frames": self.frames,
        }


def _get(url: str) -> tuple[int, int]:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp:  # noqa: S310 (the lab)
            return resp.status, len(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, 0


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def watch(stop: asyncio.Event, stop_file: str, deadline: float) -> None:
    while not os.path.exists(stop_file) and time.time() < deadline:
        await asyncio.sleep(0.2)
    stop.set()


async def crowd(config: dict) -> dict:
    started = time.time()
    stop = asyncio.Event()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    frames_per_s: dict = {}  # every frame every client got: second -> node -> count
    clients = [
        RoomClient(
            session=spec["session"],
            spec={**spec, "ideas": config.get("ideas")},
            frames_per_s=frames_per_s,
        )
        for spec in config["clients"]
    ]
    watcher = asyncio.create_task(watch(stop, config["stop_file"], started + config["max_s"]))
    runs = [asyncio.create_task(c.run(stop, gate)) for c in clients]
    while not stop.is_set() and not all(c.connections or c.connect_failures for c in clients):
        await asyncio.sleep(0.1)
    with open(config["ready_file"], "w") as file:
        json.dump(
            {
                "connected": sum(1 for c in clients if c.connections),
                "connect_s": time.time() - started,
                "cpu_s": own_cpu_s(),
            },
            file,
        )
    await stop.wait()
    stopped = time.time()
    await asyncio.wait(runs, timeout=30)
    watcher.cancel()
    return {
        "started": started,
        "stopped": stopped,
        "cpu_s": own_cpu_s(),
        "clients": [c.result() for c in clients],
        "frames_per_s": frames_per_s,
    }


def main(argv: list[str]) -> int:
    config_path, out_path = argv
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(config_path) as file:
        config = json.load(file)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(crowd(config))
    with open(out_path + ".part", "w") as file:
        json.dump(result, file)
    os.replace(out_path + ".part", out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
