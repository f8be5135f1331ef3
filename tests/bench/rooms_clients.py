"""Websocket clients for the rooms benchmark (tests/bench/bench_rooms.py): one asyncio process
drives many sockets with the `websockets` library. Run by the benchmark, never by the suite:

    python -m tests.bench.rooms_clients joins  CONFIG OUT   # sequential joins, timed
    python -m tests.bench.rooms_clients crowd  CONFIG OUT   # many listeners, then voters
    python -m tests.bench.rooms_clients steer  CONFIG OUT   # a host closes rounds; listeners vote

CONFIG is a JSON file (url, origin, sessions, proposals, timings: see bench_rooms.py); OUT is
where the results go, as JSON. Every phase ends by itself: each has a deadline, and every wait
is bounded. Times are unix seconds on this machine's clock, which the server shares (127.0.0.1).
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
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect

OPEN_TIMEOUT_S = 60
CONNECT_CONCURRENCY = 100  # handshakes in flight at once while a crowd connects
ACK_GRACE_S = 10  # after the vote phase, how long to wait for the last answers


def open_socket(config: dict, session: str | None) -> connect:
    headers = {"Cookie": f"sessionid={session}"} if session else None
    return connect(
        config["url"],
        origin=config["origin"],
        additional_headers=headers,
        compression=None,  # frames are small; deflate would cost both ends CPU for nothing
        proxy=None,
        open_timeout=OPEN_TIMEOUT_S,
        ping_interval=None,  # the server pings; the library answers
        max_queue=None,
    )


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def kind_of(raw: str) -> str:
    """A frame's type without parsing it: the server writes "type" first, compactly."""
    if raw.startswith('{"type":"'):
        return raw[9 : raw.index('"', 9)]
    return json.loads(raw).get("type", "")


# --- Joins: connect, and time the first chunk URL --------------------------------------------


async def time_join(config: dict, session: str | None, timeout_s: float = 30.0) -> dict:
    """Seconds from opening the socket to holding a chunk URL: the snapshot's, if it lists any,
    else the first `chunk` frame's."""
    started = time.time()
    async with open_socket(config, session) as ws:
        connected = time.time()
        deadline = started + timeout_s
        while time.time() < deadline:
            raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.time()))
            kind = kind_of(raw)
            if kind == "snapshot" and json.loads(raw)["chunks"]:
                break
            if kind == "chunk":
                break
        else:
            return {"ok": False, "handshake_s": connected - started}
        return {
            "ok": True,
            "first_chunk_s": time.time() - started,
            "handshake_s": connected - started,
        }


async def joins(config: dict) -> dict:
    sessions = config["sessions"]
    results = []
    for n in range(config["joins"]):
        try:
            results.append(await time_join(config, sessions[n % len(sessions)]))
        except Exception as exc:  # a failed join is counted, the phase goes on
            results.append({"ok": False, "error": repr(exc)})
        await asyncio.sleep(config.get("join_gap_s", 0.2))
    return {"joins": results}


# --- The crowd: listeners, then voters -----------------------------------------------------------


@dataclass
class Listener:
    session: str
    ws: ClientConnection | None = None
    chunks: list[tuple[int, int, float]] = field(default_factory=list)  # sequence, revision, t
    sent: dict[int, tuple[float, int]] = field(default_factory=dict)  # id -> (t, proposal)
    # id, latency, proposal, when
    acked: list[tuple[int, float, int, float]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    history: list[tuple[int, int]] = field(default_factory=list)  # every vote sent: id, proposal
    refused: list[int] = field(default_factory=list)  # ids answered with an error
    frames: int = 0
    closed: str | None = None

    def take(self, raw: str, now: float) -> None:
        self.frames += 1
        kind = kind_of(raw)
        if kind == "chunk":
            frame = json.loads(raw)
            self.chunks.append((frame["sequence"], frame.get("revision", 0), now))
        elif kind == "ack":
            frame = json.loads(raw)
            sent = self.sent.pop(frame.get("id"), None)
            if sent is not None:
                self.acked.append((frame["id"], now - sent[0], sent[1], now))
        elif kind == "error":
            frame = json.loads(raw)
            if self.sent.pop(frame.get("id"), None) is not None:
                self.refused.append(frame["id"])
            self.errors[frame.get("code", "?")] = self.errors.get(frame.get("code", "?"), 0) + 1


async def listen(listener: Listener) -> None:
    try:
        async for raw in listener.ws:
            listener.take(raw, time.time())
    except Exception as exc:  # the socket closed: note why, the phase goes on
        listener.closed = repr(exc)


async def connect_crowd(config: dict, listeners: list[Listener]) -> list[float]:
    """Open every listener's socket (CONNECT_CONCURRENCY at a time); handshake seconds."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    handshakes: list[float] = []

    async def one(listener: Listener) -> None:
        async with gate:
            started = time.time()
            try:
                listener.ws = await open_socket(config, listener.session)
            except Exception as exc:
                listener.closed = f"connect: {exc!r}"
                return
            handshakes.append(time.time() - started)

    await asyncio.gather(*(one(listener) for listener in listeners))
    return handshakes


async def vote_loop(listener: Listener, proposals: list[int], rate: float, until: float) -> None:
    """Vote `rate` times a second at random moments until `until`, for random proposals."""
    rng = random.Random(listener.session)
    await asyncio.sleep(rng.uniform(0, 1.0 / rate))
    message_id = 0
    while time.time() < until and listener.ws is not None and listener.closed is None:
        message_id += 1
        proposal = rng.choice(proposals)
        listener.sent[message_id] = (time.time(), proposal)
        listener.history.append((message_id, proposal))
        frame = {"type": "vote", "id": message_id, "proposal_id": proposal}
        try:
            await listener.ws.send(json.dumps(frame))
        except Exception as exc:
            listener.closed = f"send: {exc!r}"
            return
        await asyncio.sleep(rng.uniform(0.5, 1.5) / rate)


async def open_ballot(config: dict, host: ClientConnection) -> tuple[int, list[int]]:
    """The host closes the round (a fresh one opens, a full round long) and puts ideas on its
    ballot; (the new round's number, the proposals' ids)."""
    await host.send(json.dumps({"type": "skip", "id": "open"}))
    number = (await recv_type(host, {"round_result"}, 30))["next_round"]["number"]
    proposals = []
    for idea in config["ideas"]:
        proposals.append((await propose(host, idea))["id"])
    return number, proposals


async def crowd(config: dict) -> dict:
    listeners = [Listener(session) for session in config["sessions"][: config["clients"]]]
    started = time.time()
    handshakes = await connect_crowd(config, listeners)
    connected_at = time.time()
    cpu_marks = {"connected": own_cpu_s()}
    readers = [asyncio.create_task(listen(x)) for x in listeners if x.ws is not None]
    await asyncio.sleep(config["settle_s"])
    listen_from = time.time()
    with open(config["listening_file"], "w") as file:
        file.write(str(listen_from))
    await asyncio.sleep(config["listen_s"])
    listen_to = time.time()
    cpu_marks["listened"] = own_cpu_s()

    async with open_socket(config, config["host_session"]) as host:
        vote_round, proposals = await open_ballot(config, host)
        votes_from = time.time()
        until = votes_from + config["vote_s"]
        await asyncio.gather(
            *(vote_loop(x, proposals, config["vote_rate"], until) for x in listeners)
        )
    grace = time.time() + ACK_GRACE_S
    while any(x.sent for x in listeners) and time.time() < grace:
        await asyncio.sleep(0.1)
    votes_to = time.time()
    cpu_marks["voted"] = own_cpu_s()
    for listener in listeners:
        if listener.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.ws.close(), 5)
    for reader in readers:
        reader.cancel()
    return {
        "clients": len(listeners),
        "cpu_s": cpu_marks,
        "connected": sum(1 for x in listeners if x.ws is not None),
        "connect_s": connected_at - started,
        "handshake_s": sorted(handshakes),
        "listen_window": [listen_from, listen_to],
        "vote_window": [votes_from, until, votes_to],
        "vote_round": vote_round,
        "listeners": [
            {
                "session": x.session,
                "chunks": x.chunks,
                "acked": x.acked,
                "history": x.history,
                "refused": x.refused,
                "unanswered": len(x.sent),
                "errors": x.errors,
                "frames": x.frames,
                "closed": x.closed,
            }
            for x in listeners
        ],
    }


# --- Steering: a host closes rounds, listeners vote for a fresh idea each time ------------------


async def recv_type(
    ws: ClientConnection, kinds: set[str], timeout_s: float, *, answering=None
) -> dict:
    """The next frame of one of these types (others pass by), within the timeout; with
    `answering`, only the answer to the frame of that id (answers and broadcasts come in no
    fixed order)."""
    deadline = time.time() + timeout_s
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.time()))
        if kind_of(raw) in kinds:
            frame = json.loads(raw)
            if answering is None or frame.get("id") == answering:
                return frame


async def propose(host: ClientConnection, text: str, attempts: int = 5) -> dict:
    """Put an idea on the ballot as the host, waiting out the proposal rate limit if need be."""
    for _ in range(attempts):
        await host.send(json.dumps({"type": "propose", "id": text, "text": text}))
        answer = await recv_type(host, {"ack", "error"}, 30, answering=text)
        if answer["type"] == "ack":
            return answer["proposal"]
        if answer.get("code") != "rate_limited":
            break
        await asyncio.sleep(answer.get("retry_after_s", 1.0) + 0.1)
    raise RuntimeError(f"the host could not propose {text!r}: {answer}")


async def steer(config: dict) -> dict:
    rounds = []
    async with contextlib.AsyncExitStack() as stack:
        host = await stack.enter_async_context(open_socket(config, config["host_session"]))
        voters = [
            await stack.enter_async_context(open_socket(config, session))
            for session in config["sessions"][: config["voters"]]
        ]
        await recv_type(host, {"snapshot"}, 10)
        for ws in voters:
            await recv_type(ws, {"snapshot"}, 10)
        for n in range(config["rounds"]):
            text = f"{config['ideas'][n % len(config['ideas'])]} (round {n + 1})"
            proposal = await propose(host, text)
            for i, ws in enumerate(voters):
                await ws.send(json.dumps({"type": "vote", "id": i, "proposal_id": proposal["id"]}))
            for i, ws in enumerate(voters):
                await recv_type(ws, {"ack", "error"}, 10, answering=i)
            skip_sent = time.time()
            await host.send(json.dumps({"type": "skip", "id": f"s{n}"}))
            result = await recv_type(host, {"round_result"}, 10)
            rounds.append(
                {
                    "round": result["round"],
                    "idea": text,
                    "skip_sent": skip_sent,
                    "result_received": time.time(),
                    "steering": result["steering"],
                }
            )
            await asyncio.sleep(config["round_gap_s"])
    return {"rounds": rounds}


# --- The keeper: one listener for the whole run, so the room keeps playing -----------------------


async def keep(config: dict) -> dict:
    """Join, write the seconds to the first chunk to `ready_file`, and listen until
    `stop_file` appears (or `stay_s` passes)."""
    started = time.time()
    chunks = 0
    async with open_socket(config, config["sessions"][0]) as ws:
        deadline = started + config["stay_s"]
        while time.time() < deadline and not os.path.exists(config["stop_file"]):
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            kind = kind_of(raw)
            if kind == "chunk" or (kind == "snapshot" and json.loads(raw)["chunks"]):
                chunks += 1
                if chunks == 1:
                    with open(config["ready_file"], "w") as file:
                        json.dump({"first_chunk_s": time.time() - started}, file)
    return {"chunks": chunks}


PHASES = {"joins": joins, "crowd": crowd, "steer": steer, "keep": keep}


def main(argv: list[str]) -> int:
    phase, config_path, out_path = argv
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(config_path) as file:
        config = json.load(file)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(PHASES[phase](config))
    with open(out_path, "w") as file:
        json.dump(result, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
