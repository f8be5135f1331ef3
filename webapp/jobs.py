"""Enqueue background work after the transaction commits, on Celery or in this process.

Service mode sends the task to its Celery queue. The embedded default runs the same task function
in a single background thread of this process (one at a time, like a GPU worker with concurrency 1);
tests can make it run inline (`CHORUS_TASKS_SYNC=1`). Either way the task is sent only once the
surrounding transaction commits, so a worker never sees a row that rolled back.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import Task
from django.conf import settings
from django.db import close_old_connections, transaction

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _inprocess_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chorus-task")
        return _executor


def _run_inprocess(task: Task, args: tuple, kwargs: dict) -> None:
    try:
        task.apply(args=args, kwargs=kwargs, throw=True)
    except Exception:  # the task itself records failures on its rows; this is the last resort
        logger.exception("in-process task %s failed", task.name)
    finally:
        close_old_connections()


def enqueue(task: Task, *args, **kwargs) -> None:
    """Run `task(*args, **kwargs)` in the background once the current transaction commits."""

    def send() -> None:
        if not settings.TASKS_INPROCESS:
            task.apply_async(args=args, kwargs=kwargs)
        elif settings.TASKS_INPROCESS_SYNC:
            task.apply(args=args, kwargs=kwargs, throw=True)
        else:
            _inprocess_executor().submit(_run_inprocess, task, args, kwargs)

    transaction.on_commit(send)
