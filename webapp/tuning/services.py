"""Writes of the tuning loop: register versions, run canaries, decide, and run a round.

    model_version_register      a checkpoint becomes a candidate version (name = file stem)
    model_version_ensure_base   the promoted version, registering the shipped LM when none is
    model_version_start_canary  a candidate serves a share of new songs and rooms
    model_version_promote       it serves everything; the previous promoted one retires
    model_version_roll_back     it serves nothing any more
    canary_evaluate             promote, roll back or wait, from the feedback (every call recorded)
    tuning_round                labels -> critic -> DPO -> guardrails -> a candidate in canary

State changes lock the rows they change (select_for_update) inside one transaction, so two
beats, or a beat and an admin, never promote two versions at once (the table's constraints
would refuse it anyway: one promoted, one canary).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from generation.tuning.canary import PROMOTE, ROLL_BACK, CanaryRules, decide, outcomes_from_labels
from generation.tuning.labels import build_labels
from webapp.errors import ServiceError
from webapp.tuning.models import ModelVersion, TuningRun, VersionDecision
from webapp.tuning.selectors import dropped_actors, feedback_rows, version_serving

logger = logging.getLogger(__name__)

Status = ModelVersion.Status


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- The registry ----------------------------------------------------------------------------


def model_version_register(
    *,
    checkpoint: str | Path,
    parent: ModelVersion | None = None,
    metrics: dict | None = None,
    feedback_from: datetime | None = None,
    feedback_to: datetime | None = None,
    labels_version: str = "",
    note: str = "",
) -> ModelVersion:
    """Register an LM checkpoint as a candidate version, named by its file stem (the name the
    engine reports, so feedback on its songs carries it). Registering the same file twice
    returns the existing version; another file under a taken name is refused."""
    path = Path(checkpoint).resolve()
    if not path.is_file():
        raise ServiceError(f"No checkpoint at {path}.", field="checkpoint")
    name = path.stem
    if len(name) > 64:
        raise ServiceError("A version's name (the file's stem) is at most 64 characters.")
    sha = file_sha256(path)
    known = ModelVersion.objects.filter(name=name).first()
    if known is not None:
        if known.sha256 != sha:
            raise ServiceError(
                f"Another checkpoint is already registered as {name!r}.", code="conflict"
            )
        return known
    return ModelVersion.objects.create(
        name=name,
        checkpoint=str(path),
        sha256=sha,
        parent=parent,
        metrics=metrics or {},
        feedback_from=feedback_from,
        feedback_to=feedback_to,
        labels_version=labels_version,
        note=note,
    )


def _record(
    version: ModelVersion,
    action: str,
    reason: str,
    *,
    baseline: ModelVersion | None = None,
    details: dict | None = None,
) -> VersionDecision:
    return VersionDecision.objects.create(
        version=version,
        baseline=baseline,
        action=action,
        reason=reason[:200],
        details=details or {},
    )


def model_version_promote(
    *,
    version: ModelVersion,
    reason: str = "promoted by hand",
    action: str = VersionDecision.Action.MANUAL,
    details: dict | None = None,
) -> ModelVersion:
    """Make a version the one that serves everything; the previously promoted one retires."""
    now = timezone.now()
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status == Status.PROMOTED:
            return version
        if version.status in (Status.ROLLED_BACK, Status.RETIRED):
            raise ServiceError(f"{version.name} was {version.status}; register a new version.")
        previous = ModelVersion.objects.select_for_update().filter(status=Status.PROMOTED).first()
        if previous is not None:
            previous.status, previous.retired_at = Status.RETIRED, now
            previous.save(update_fields=["status", "retired_at"])
        version.status, version.promoted_at, version.canary_share = Status.PROMOTED, now, 0.0
        version.save(update_fields=["status", "promoted_at", "canary_share"])
        _record(version, action, reason, baseline=previous, details=details)
    logger.info("model version %s promoted (%s)", version.name, reason)
    return version


def model_version_roll_back(
    *,
    version: ModelVersion,
    reason: str = "rolled back by hand",
    action: str = VersionDecision.Action.MANUAL,
    baseline: ModelVersion | None = None,
    details: dict | None = None,
) -> ModelVersion:
    """Stop a candidate or canary from serving: new songs and rooms get the promoted version."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status not in (Status.CANDIDATE, Status.CANARY):
            raise ServiceError(
                f"Only a candidate or a canary can be rolled back; {version.name} is "
                f"{version.status}. Promote another version instead."
            )
        version.status, version.rolled_back_at = Status.ROLLED_BACK, timezone.now()
        version.canary_share = 0.0
        version.save(update_fields=["status", "rolled_back_at", "canary_share"])
        _record(version, action, reason, baseline=baseline, details=details)
    logger.info("model version %s rolled back (%s)", version.name, reason)
    return version


def model_version_start_canary(*, version: ModelVersion, share: float) -> ModelVersion:
    """A candidate starts serving `share` of new songs and rooms beside the promoted version."""
    if not 0.0 < share < 1.0:
        raise ServiceError("A canary's share is between 0 and 1 (exclusive).", field="share")
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != Status.CANDIDATE:
            raise ServiceError(
                f"Only a candidate can start a canary; {version.name} is {version.status}."
            )
        promoted, canary = version_serving()
        if promoted is None:
            raise ServiceError("A canary needs a promoted version to compare with.")
        if canary is not None:
            raise ServiceError(f"{canary.name} is in canary already; one at a time.")
        version.status, version.canary_share = Status.CANARY, share
        version.canary_started_at = timezone.now()
        version.save(update_fields=["status", "canary_share", "canary_started_at"])
    return version


def model_version_ensure_base(*, checkpoint: str | Path | None = None) -> ModelVersion:
    """The promoted version; when none is, the base checkpoint (the shipped LM, or
    ``TUNING_BASE_CHECKPOINT``) is registered and promoted."""
    promoted, _ = version_serving()
    if promoted is not None:
        return promoted
    version = model_version_register(
        checkpoint=checkpoint or settings.TUNING_BASE_CHECKPOINT, note="the base model"
    )
    return model_version_promote(version=version, reason="the base model")


# --- Canaries --------------------------------------------------------------------------------


def canary_rules() -> CanaryRules:
    return CanaryRules(**settings.TUNING_CANARY_RULES)


def canary_evaluate(
    *, now: datetime | None = None, rules: CanaryRules | None = None
) -> VersionDecision | None:
    """Compare the canary with the promoted version on the feedback since the canary started
    (listenings of either's items in that window: concurrent, so time of day and trends affect
    both alike), record the decision, and act on it. None when no canary runs."""
    promoted, canary = version_serving()
    if canary is None or promoted is None:
        return None
    now = now or timezone.now()
    since = canary.canary_started_at or canary.created_at
    names = [promoted.name, canary.name]
    rows = feedback_rows(since=since, until=now, versions=names)
    labels = build_labels(rows, dropped=dropped_actors(since=since, until=now))
    decision = decide(
        outcomes_from_labels(labels, names),
        promoted.name,
        canary.name,
        rules or canary_rules(),
        age_s=(now - since).total_seconds(),
    )
    details = decision.as_dict()
    if decision.action == PROMOTE:
        model_version_promote(
            version=canary, reason=decision.reason, action=PROMOTE, details=details
        )
    elif decision.action == ROLL_BACK:
        model_version_roll_back(
            version=canary,
            reason=decision.reason,
            action=ROLL_BACK,
            baseline=promoted,
            details=details,
        )
    else:
        _record(canary, decision.action, decision.reason, baseline=promoted, details=details)
    return canary.decisions.order_by("-created_at", "-id").first()


# --- A round of the loop ---------------------------------------------------------------------


def tuning_round(
    *,
    now: datetime | None = None,
    window_days: float | None = None,
    config=None,
    canary_share: float | None = None,
    guardrails: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> TuningRun:
    """labels -> critic -> DPO -> guardrails -> a candidate version in canary.

    Reads the feedback of the last ``window_days`` (TUNING_WINDOW_DAYS), tunes the promoted
    version on its own pairs, and registers the result (LM and critic in TUNING_DIR) only when
    DPO beat the untouched model on held-out pairs and no guardrail is worse than its tolerance.
    Every run is recorded (TuningRun), whatever it concluded. Heavy: run it on a worker of
    queue `gpu` or from the command line (`manage.py tune round`)."""
    from generation.codec import Codec
    from generation.lm.model import TokenLM
    from generation.tuning.clips import ClipMaker
    from generation.tuning.loop import RoundConfig, run_round
    from webapp.tuning.clips import item_clips

    say = log or logger.info
    now = now or timezone.now()
    since = now - timedelta(days=window_days or settings.TUNING_WINDOW_DAYS)
    base = model_version_ensure_base()
    run = TuningRun.objects.create(base=base, feedback_from=since, feedback_to=now)

    def finish(status: str, message: str, **fields) -> TuningRun:
        for name, value in fields.items():
            setattr(run, name, _json_safe(value) if isinstance(value, dict) else value)
        run.status, run.message, run.finished_at = status, message, timezone.now()
        run.save()
        say(f"tuning run {run.pk}: {status}: {message}")
        return run

    try:
        rows = feedback_rows(since=since, until=now)
        labels = build_labels(rows, dropped=dropped_actors(since=since, until=now))
        counts = {"events": len(rows), **labels.counts, "pairs": len(labels.pairs)}
        say(f"{len(rows)} events -> {len(labels.pairs)} pairs ({labels.version})")
        lm = TokenLM.load(base.checkpoint)
        codec = Codec.load(settings.TUNING_CODEC_CHECKPOINT)
        wanted = {i for p in labels.pairs for i in (p.chosen, p.rejected)}
        clips = item_clips(wanted, ClipMaker(lm, codec))
        counts["items_with_clips"] = len(clips)
        result = run_round(lm, labels, clips, base.name, config or RoundConfig(), progress, say)
        metrics, counts = result.metrics(), {**counts, **result.counts}
        if result.policy is None:
            why = _why_no_policy(result)
            return finish(TuningRun.Status.SKIPPED, why, counts=counts, metrics=metrics)
        if guardrails:
            metrics["guardrails"] = _guardrails(lm, result.policy, codec).as_dict()
            if not metrics["guardrails"]["ok"]:
                why = "a guardrail is worse than its tolerance"
                return finish(TuningRun.Status.SKIPPED, why, counts=counts, metrics=metrics)
        version = _register_candidate(result, lm, base, metrics, since, now, labels.version)
        share = settings.TUNING_CANARY_SHARE if canary_share is None else canary_share
        if share > 0:
            version = model_version_start_canary(version=version, share=share)
        return finish(
            TuningRun.Status.DONE,
            f"candidate {version.name}",
            counts=counts,
            metrics=metrics,
            produced=version,
        )
    except Exception as exc:
        logger.exception("tuning run %s failed", run.pk)
        finish(TuningRun.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _guardrails(base_lm, tuned_lm, codec):
    """Both guardrails, with whichever instruments this deployment has (a corpus manifest for
    quality, the attribute probe for adherence)."""
    from generation.tuning import guardrails as rails

    probe = None
    if Path(settings.TUNING_PROBE).exists():
        from generation.probe import AttributeProbe

        probe = AttributeProbe.load(settings.TUNING_PROBE)
    return rails.check(
        base_lm, tuned_lm, codec, probe=probe, manifest=settings.TUNING_GUARDRAIL_MANIFEST
    )


def _register_candidate(result, lm, base, metrics, since, now, labels_version) -> ModelVersion:
    """Save the tuned LM (and its critic beside it) in TUNING_DIR and register it, linked to
    its parent, the window it learned from and what it measured."""
    from generation.lm.songs import critic_beside

    folder = Path(settings.TUNING_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tuned-{now:%Y%m%d-%H%M%S}.pt"
    extra = {**getattr(lm, "extra", {}), "tuning": {"parent": base.name, **metrics}}
    result.policy.save(path, extra=_json_safe(extra))
    if result.critic is not None:
        result.critic.save(critic_beside(path))
    return model_version_register(
        checkpoint=path,
        parent=base,
        metrics=_json_safe(metrics),
        feedback_from=since,
        feedback_to=now,
        labels_version=labels_version,
    )


def _why_no_policy(result) -> str:
    if result.dpo is None:
        return "too few on-policy pairs for DPO"
    return "DPO never beat the untouched model on held-out pairs"


def _json_safe(value):
    """Metrics as plain JSON (floats that are NaN become None)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value
