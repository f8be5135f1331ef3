"""Hosts on one machine: Linux network namespaces on a bridge, for multi-host tests
(tests/bench/bench_scale.py, tests/bench/soak.py). Needs root and iproute2 (`ip`).

    with Lab() as lab:                       # a bridge on a free 10.77.N.0/24
        db = lab.host("db")                  # a namespace with its own address on the bridge
        pg = PostgresServer(lab, db)         # a PostgreSQL cluster of its own, in that host
        web = lab.host("web1").spawn(["python", "-m", "uvicorn", ...], log=path)
    # everything torn down: processes stopped, namespaces and links deleted, temp dirs removed

A host is a namespace with a loopback and one veth whose other end is on the lab's bridge.
Processes in different hosts reach each other only through the bridge, by address, as
separate machines would; they share the filesystem and the clock (a shared volume, NTP).
Nothing listens on the machine's own interfaces: the bridge's addresses are not routed.

Names carry the creating process's pid (`chs<pid>-web1`, `chs<pid>br`), so parallel runs never
meet, and a run that was killed with SIGKILL (no teardown) is swept by the next one: its pid is
gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "chs"
SUBNET_FIRST_OCTETS = "10.77"
STOP_TIMEOUT_S = 10.0
NAME = re.compile(rf"^{PREFIX}(\d+)(?:-|br$|v\d+$)")


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; its output."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete namespaces and links left by runs whose process is gone (killed without a
    teardown). Those of live runs are left alone."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NAME.match(name)
        if match and not _alive(int(match.group(1))):
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        match = NAME.match(name)
        if match and not _alive(int(match.group(1))):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def free_subnet() -> str:
    """A 10.77.N.0/24 that no interface of this machine uses yet: "10.77.N"."""
    pattern = rf"inet {re.escape(SUBNET_FIRST_OCTETS)}\.(\d+)\."
    used = set(re.findall(pattern, ip("-o", "-4", "addr")))
    start = os.getpid() % 250
    for n in [*range(start, 250), *range(start)]:
        if str(n) not in used:
            return f"{SUBNET_FIRST_OCTETS}.{n}"
    raise RuntimeError("no free 10.77.N.0/24 subnet")


@dataclass
class Process:
    """A process started in a host, in a session of its own (its group is what gets stopped)."""

    name: str
    popen: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group at once (SIGKILL: as if its machine went away)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """`stop_signal` to the group, SIGKILL after `timeout_s`; nothing of the group is left."""
        self.kill_group(self.stop_signal)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        deadline = time.monotonic() + 5  # children that outlived their leader
        while time.monotonic() < deadline:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@dataclass
class Host:
    lab: Lab
    name: str
    namespace: str
    address: str

    def spawn(
        self,
        command: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        nice: int = 0,
        stop_signal: int = signal.SIGTERM,
    ) -> Process:
        """Start `command` inside this host (as `user` if given), its output in `log`. The lab
        stops it at teardown, the latest started first."""
        prefix = ["ip", "netns", "exec", self.namespace]
        if user:
            prefix += ["runuser", "-u", user, "--"]
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [*prefix, *command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,  # noqa: PLW1509
            )
        process = Process(f"{self.name}:{Path(command[0]).name}", popen, log, stop_signal)
        self.lab.processes.append(process)
        return process

    def run(self, command: list[str], *, timeout: float = 60, user: str | None = None) -> str:
        """Run a short command inside this host; its output (raises on failure)."""
        prefix = ["ip", "netns", "exec", self.namespace] + (
            ["runuser", "-u", user, "--"] if user else []
        )
        proc = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{command[0]} in {self.name}: {proc.stderr.strip()[-2000:]}")
        return proc.stdout


@dataclass
class Lab:
    """A bridge and the hosts on it. A context manager: leaving it (normally, on an exception,
    on SIGTERM or SIGHUP) stops every process it started and deletes what it created."""

    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    cleanups: list = field(default_factory=list)  # callables, run last-in first-out

    def __post_init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}br"
        self.subnet = ""
        self.tmp = Path(tempfile.mkdtemp(prefix=f"chorus-{self.tag}-"))
        self.tmp.chmod(0o711)  # PostgreSQL runs as its own user under it
        self.keep_tmp = False  # keep the logs (the temp dir) at teardown
        self._previous_handlers: dict[int, object] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous_handlers[sig] = signal.signal(sig, _exit_on_signal)
        sweep_stale()
        self.subnet = free_subnet()
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop processes (latest first), run cleanups, delete namespaces, the bridge and the
        temp dir (unless `keep_tmp`). Safe to call twice."""
        # Ctrl-C during teardown would leave things behind: finish first.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self.processes:
                process = self.processes.pop()
                with contextlib.suppress(Exception):
                    process.stop()
            while self.cleanups:
                with contextlib.suppress(Exception):
                    self.cleanups.pop()()
            for host in list(self.hosts.values()):
                ip("netns", "del", host.namespace, check=False)  # its veth goes with it
            self.hosts.clear()
            ip("link", "del", self.bridge, check=False)
            if not self.keep_tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous_int)
            for sig, handler in self._previous_handlers.items():
                signal.signal(sig, handler)
            self._previous_handlers.clear()

    def save_logs(self) -> Path:
        """Copy the logs (and small JSON files) of the temp dir's top level to a directory of
        their own, which teardown leaves; its path."""
        kept = Path(tempfile.mkdtemp(prefix=f"chorus-lab-logs-{self.tag}-"))
        for path in self.tmp.iterdir():
            if path.is_file() and (path.suffix == ".log" or path.stat().st_size < 2**20):
                shutil.copy2(path, kept / path.name)
        return kept

    # -- hosts -------------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        """A new namespace `chs<pid>-<name>` with an address on the bridge (.10, .11, ...)."""
        index = len(self.hosts)
        namespace, veth, peer = f"{self.tag}-{name}", f"{self.tag}v{index}", f"{self.tag}p{index}"
        address = f"{self.subnet}.{10 + index}"
        ip("netns", "add", namespace)
        self.hosts[name] = host = Host(self, name, namespace, address)  # deleted at teardown
        ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", namespace)
        ip("-n", namespace, "link", "set", peer, "name", "eth0")
        ip("link", "set", veth, "master", self.bridge)
        ip("link", "set", veth, "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        return host


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def wait_for_port(address: str, port: int, *, timeout_s: float, process: Process | None = None):
    """Wait (bounded) until something accepts connections at address:port (from the root
    namespace, through the bridge)."""
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{tail(process.log)}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {address}:{port} within {timeout_s} s")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- Stores in hosts ----------------------------------------------------------------------------


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb into the lab's temp dir, as the `postgres` user,
    since initdb refuses root), listening on its host's address only; trust auth from the lab's
    subnet. Stopped with a fast shutdown (SIGINT to the postmaster)."""

    def __init__(self, lab: Lab, host: Host, *, port: int = 5432, max_connections: int = 200):
        self.host, self.port = host, port
        self.dir = lab.tmp / "postgres"
        self.dir.mkdir()
        shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        host.run(
            ["initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            user="postgres",
            timeout=120,
        )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {lab.subnet}.0/24 trust\n")
        command = ["postgres", "-D", str(data), "-k", str(self.dir), "-h", host.address]
        command += ["-p", str(port), "-c", f"max_connections={max_connections}"]
        self.process = host.spawn(
            command, log=lab.tmp / "postgres.log", user="postgres", stop_signal=signal.SIGINT
        )
        self.pid_file = data / "postmaster.pid"
        lab.cleanups.append(self.stop)  # after the app's processes are gone, before the netns
        wait_for_port(host.address, port, timeout_s=60, process=self.process)

    @property
    def url(self) -> str:
        return f"postgres://postgres@{self.host.address}:{self.port}"

    def postmaster_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        # Backends run in sessions of their own: signal the postmaster, which stops them.
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.process.stop()


class RedisServer:
    """A redis-server of its own on its host's address: no persistence, eviction of keys with
    an expiry only (as deploy/ configures it)."""

    def __init__(self, lab: Lab, host: Host, *, port: int = 6379):
        self.host, self.port = host, port
        command = ["redis-server", "--bind", host.address, "--port", str(port)]
        command += ["--protected-mode", "no", "--save", "", "--appendonly", "no"]
        command += ["--maxmemory-policy", "volatile-lru", "--dir", str(lab.tmp)]
        self.process = host.spawn(command, log=lab.tmp / "redis.log")
        wait_for_port(host.address, port, timeout_s=30, process=self.process)

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host.address}:{self.port}/{db}"
