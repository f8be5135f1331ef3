"""A real Chorus server for browser tests and the sync bench: the embedded default (SQLite in a
temporary folder, in-memory channel layer, generation and the conductor in the process), on a
free port of 127.0.0.1, stopped (and its folder removed) on exit.

Also the helpers both use to drive pages the way a person does: sign up, start a room.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHORUS_CHROMIUM", "/usr/bin/chromium")
DIST = ROOT / "webapp" / "static" / "dist"
SCREENSHOTS = ROOT / "var" / "screenshots"
# Headless Chromium: audio goes to a fake output device whose clock runs in real time; the
# autoplay flag is not needed (every AudioContext starts from a click) but keeps tests honest
# about the click being the trigger by leaving the default policy in place.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"]


def missing_requirements() -> str | None:
    """Why browser tests cannot run here, or None."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHORUS_CHROMIUM)"
    if not (DIST / "room.js").exists():
        if shutil.which("npm") is None:
            return "the front end is not built and npm is missing (make frontend)"
        subprocess.run(["make", "-s", "frontend"], cwd=ROOT, check=True)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    var_dir: Path
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def chorus_server(*, backend: str = "chorus", timeout_s: float = 60) -> Iterator[Server]:
    """Migrates a fresh database and serves it with uvicorn until the block ends."""
    var_dir = Path(tempfile.mkdtemp(prefix="chorus-e2e-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DJANGO_DEBUG="1",  # static files straight from webapp/static (no collectstatic)
        CHORUS_VAR_DIR=str(var_dir),
        CHORUS_SITE_URL=url,
        CHORUS_GENERATION_BACKEND=backend,
        CHORUS_RATELIMIT_ENABLED="0",  # many sign-ups from one address in a few seconds
        CHORUS_LOG_LEVEL="WARNING",
    )
    log_path = var_dir / "server.log"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(url=url, var_dir=var_dir, log_path=log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(var_dir, ignore_errors=True)


# --- Driving pages as a person would ------------------------------------------------------


PASSWORD = "correct horse battery"  # noqa: S105 (a throwaway test account)


def sign_up(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"**/u/{username}/")


def start_room(page, base_url: str, title: str, prompt: str, visibility: str = "public") -> str:
    """Starts a room from the form and returns the room page's URL."""
    page.goto(f"{base_url}/rooms/new/")
    page.get_by_label("Title").fill(title)
    page.get_by_label("What it plays when nobody votes").fill(prompt)
    page.get_by_label("Visibility").select_option(visibility)
    page.get_by_role("button", name="Start the room").click()
    page.wait_for_url("**/rooms/*/**")
    return page.url


def join_room(page, room_url: str) -> None:
    page.goto(room_url)
    page.get_by_role("button", name="Join and listen").click()


def scheduled_chunks(page) -> list[dict]:
    """What the page's scheduler placed (RoomPage.placed, via window.__chorus)."""
    return page.evaluate("() => window.__chorus ? window.__chorus.placed : []")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
