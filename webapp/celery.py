"""The Celery application.

Two queues: `gpu` (song generation, room chunks; one process per GPU, concurrency 1) and `default`
(everything else), plus each worker's own queue (`worker_direct`) for the rooms it holds. Tasks
are acknowledged late and prefetched one at a time, so a worker that dies mid-task hands its task
to another worker instead of losing it.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

# The tuning loop's pace: a round a week, the canary judged every 10 minutes (docs/tuning.md).
TUNING_ROUND_EVERY_S = float(os.environ.get("CHORUS_TUNING_ROUND_EVERY_S", str(7 * 86400)))
TUNING_CANARY_EVERY_S = float(os.environ.get("CHORUS_CANARY_EVERY_S", "600"))

app = Celery("chorus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=(Queue("default"), Queue("gpu")),
    task_default_queue="default",
    task_routes={
        "webapp.songs.tasks.song_generate": {"queue": "gpu"},
        "generation.tasks.*": {"queue": "gpu"},  # the engine's own tasks (rooms, songs)
        "collab.tasks.*": {"queue": "default"},
        "webapp.tuning.tasks.tuning_round": {"queue": "gpu"},  # it trains the critic and the LM
    },
    include=["generation.tasks"],
    # Every worker also consumes a queue of its own (`<node name>.dq2`): the conductor sends a
    # room's next chunk to the worker that holds it resident (collab/conductor.py). Node names
    # must be unique (`-n gpu@%h`, `gpu@$(POD_NAME)`).
    worker_direct=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=300,
    task_time_limit=330,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        "songs-requeue-stalled": {
            "task": "webapp.songs.tasks.songs_requeue_stalled",
            "schedule": 60.0,
        },
        # Rooms are conducted by `manage.py conductor` (4 ticks a second, one leader by a Redis
        # lock). This tick is the fallback: it does nothing while a conductor leads, and keeps
        # rooms playing at a 1 s step when none does. Expired ticks are dropped, never queued.
        "rooms-conductor-fallback": {
            "task": "collab.tasks.conductor_tick",
            "schedule": 1.0,
            "options": {"expires": 1.0},
        },
        # The tuning loop (docs/tuning.md): a round makes a candidate and starts its canary;
        # canaries are judged every few minutes (promote, roll back, or wait).
        "tuning-round": {
            "task": "webapp.tuning.tasks.tuning_round",
            "schedule": TUNING_ROUND_EVERY_S,
        },
        "tuning-canary": {
            "task": "webapp.tuning.tasks.canary_evaluate",
            "schedule": TUNING_CANARY_EVERY_S,
            "options": {"expires": TUNING_CANARY_EVERY_S},
        },
    },
)
app.autodiscover_tasks()


@worker_ready.connect
def serve_metrics(**_) -> None:
    """A worker serves its metrics on CHORUS_METRICS_PORT when that is set; with prefork
    children, PROMETHEUS_MULTIPROC_DIR must be set too, so the parent sees what the children
    count (webapp/metrics.py)."""
    from webapp import metrics

    metrics.serve_from_env()


@worker_process_shutdown.connect
def forget_metrics_of_child(pid=None, **_) -> None:
    from webapp import metrics

    metrics.process_exited(pid or os.getpid())
