"""Celery tasks of the tuning loop: thin, they call one service each (beat: webapp/celery.py)."""

from celery import shared_task
from django.conf import settings

from webapp.tuning import services


@shared_task(
    name="webapp.tuning.tasks.tuning_round",
    soft_time_limit=settings.TUNING_ROUND_SOFT_TIME_LIMIT_S,
    time_limit=settings.TUNING_ROUND_SOFT_TIME_LIMIT_S + 60,
)
def tuning_round() -> dict:
    """Beat (queue `gpu`: it trains): labels -> critic -> DPO -> guardrails -> a canary."""
    run = services.tuning_round()
    return {"run": run.pk, "status": run.status, "message": run.message}


@shared_task(name="webapp.tuning.tasks.canary_evaluate")
def canary_evaluate() -> dict:
    """Beat (queue `default`): promote, roll back or keep waiting on the canary, if one runs."""
    decision = services.canary_evaluate()
    if decision is None:
        return {"canary": None}
    return {"canary": decision.version.name, "action": decision.action, "reason": decision.reason}
