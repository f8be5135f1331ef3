"""`python manage.py conductor`: the rooms' conductor as a process of its own (service mode).

Ticks every `--interval` seconds while it holds the conductor lock in Redis; run two for
failover, only one leads. Stops cleanly on SIGTERM or SIGINT (within one interval).
"""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from collab import conductor
from webapp import metrics


class Command(BaseCommand):
    help = "Keep live rooms' music generated ahead of their listeners, and close due rounds."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--interval", type=float, default=conductor.TICK_S, help="seconds between ticks"
        )
        parser.add_argument(
            "--max-ticks", type=int, default=None, help="stop after this many ticks"
        )

    def handle(self, *args, interval: float, max_ticks: int | None, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "The embedded default runs its conductor inside the web process (`make run`); "
                "this command is for service mode (REDIS_URL set), where presence, the store "
                "and the lock are shared through Redis."
            )
        if not 0.05 <= interval <= 5:
            raise CommandError("--interval is 0.05 to 5 seconds.")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        metrics.serve_from_env()  # CHORUS_METRICS_PORT, if set (docs/deploy.md)
        self.stdout.write(f"conductor: ticking every {interval:g} s while leading")
        ticks = conductor.run_loop(stop, interval_s=interval, max_ticks=max_ticks)
        self.stdout.write(f"conductor: stopped after {ticks} ticks")
