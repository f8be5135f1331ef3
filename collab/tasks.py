"""Celery tasks of rooms: thin, one call each.

The conductor normally runs as its own process (`python manage.py conductor`, ticking four
times a second, docs/rooms.md). `collab.tasks.conductor_tick` is beat's fallback: every second
it ticks once, but only when no conductor holds the lock, so a deployment that runs no
conductor process (or whose conductor died) still keeps its rooms playing, at a coarser step.
"""

from celery import shared_task

from collab import conductor


@shared_task(name="collab.tasks.conductor_tick", ignore_result=True)
def conductor_tick() -> dict:
    """Beat, every second (queue `default`): one tick, if no other conductor leads."""
    lead = conductor.leadership()
    if not lead.acquire():
        return {"skipped": 1}
    try:
        return conductor.conductor_tick().as_dict()
    finally:
        lead.release()
