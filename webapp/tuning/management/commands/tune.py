"""`python manage.py tune`: the tuning loop by hand, with progress.

    manage.py tune round     labels -> critic -> DPO -> guardrails -> a candidate in canary
    manage.py tune canary    judge the canary now: promote, roll back or keep waiting
    manage.py tune register PATH [--promote | --canary SHARE]    a checkpoint as a version
    manage.py tune status    the versions and the latest decisions

The beat runs the same services on a schedule (webapp/celery.py). `round` and `canary` end with
one line of JSON (what they did), for scripts.
"""

from __future__ import annotations

import json
from dataclasses import replace

from django.core.management.base import BaseCommand, CommandError

from webapp.errors import ServiceError
from webapp.tuning import services
from webapp.tuning.models import ModelVersion, VersionDecision


class Command(BaseCommand):
    help = "Run the tuning loop by hand: a round, a canary evaluation, or register a version."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        round_ = sub.add_parser("round", help="one round: labels, critic, DPO, a canary")
        round_.add_argument("--window-days", type=float, default=None)
        round_.add_argument("--steps", type=int, default=None, help="DPO steps at most")
        round_.add_argument("--lr", type=float, default=None, help="DPO learning rate")
        round_.add_argument("--beta", type=float, default=None, help="DPO beta")
        round_.add_argument("--batch", type=int, default=None, help="DPO pairs per step")
        round_.add_argument(
            "--eval-every", type=int, default=None, help="DPO steps between held-out checks"
        )
        round_.add_argument(
            "--frames", type=int, default=None, help="DPO scores each item's first frames only"
        )
        round_.add_argument("--canary-share", type=float, default=None)
        round_.add_argument("--no-guardrails", action="store_true")
        round_.add_argument("--threads", type=int, default=None, help="torch threads")
        sub.add_parser("canary", help="judge the canary now")
        register = sub.add_parser("register", help="register a checkpoint as a version")
        register.add_argument("checkpoint")
        register.add_argument("--promote", action="store_true")
        register.add_argument("--canary", type=float, default=None, metavar="SHARE")
        sub.add_parser("status", help="versions and the latest decisions")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc

    def say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def do_round(self, **o) -> None:
        from generation.tuning.loop import RoundConfig

        if o["threads"]:
            import torch

            torch.set_num_threads(o["threads"])
        config = RoundConfig()
        dpo = {
            k: o[name]
            for k, name in (
                ("max_steps", "steps"),
                ("lr", "lr"),
                ("beta", "beta"),
                ("batch_size", "batch"),
                ("eval_every", "eval_every"),
            )
            if o[name] is not None
        }
        if dpo:
            config = replace(config, dpo=replace(config.dpo, **dpo))
        if o["frames"]:
            config = replace(config, dpo_frames=o["frames"])
        run = services.tuning_round(
            window_days=o["window_days"],
            config=config,
            canary_share=o["canary_share"],
            guardrails=not o["no_guardrails"],
            progress=True,
            log=self.say,
        )
        produced = run.produced.name if run.produced else None
        self.say(
            json.dumps(
                {
                    "run": run.pk,
                    "status": run.status,
                    "message": run.message,
                    "produced": produced,
                    "counts": run.counts,
                    "metrics": run.metrics,
                }
            )
        )

    def do_canary(self, **o) -> None:
        decision = services.canary_evaluate()
        if decision is None:
            self.say("No canary is running.")
            self.say(json.dumps({"canary": None}))
            return
        self.say(f"{decision.version.name}: {decision.action} ({decision.reason})")
        self.say(
            json.dumps(
                {
                    "canary": decision.version.name,
                    "action": decision.action,
                    "reason": decision.reason,
                    "details": decision.details,
                }
            )
        )

    def do_register(self, *, checkpoint: str, promote: bool, canary: float | None, **o) -> None:
        if promote and canary is not None:
            raise CommandError("--promote or --canary, not both.")
        version = services.model_version_register(checkpoint=checkpoint)
        if promote:
            version = services.model_version_promote(version=version, reason="registered by hand")
        elif canary is not None:
            version = services.model_version_start_canary(version=version, share=canary)
        self.say(f"{version.name}: {version.status} ({version.checkpoint})")

    def do_status(self, **o) -> None:
        for v in ModelVersion.objects.all()[:50]:
            share = f" {v.canary_share:.0%}" if v.status == ModelVersion.Status.CANARY else ""
            self.say(f"{v.name:<32} {v.status}{share}  parent={v.parent.name if v.parent else '-'}")
        for d in VersionDecision.objects.select_related("version")[:10]:
            self.say(f"{d.created_at:%Y-%m-%d %H:%M} {d.version.name}: {d.action} ({d.reason})")
