"""Writing the audit log: one entry per moderation or host action, in the action's transaction.

Kept apart from webapp.moderation.services so that other apps' services (collab: a host mutes or
kicks) can write entries without importing the moderation actions, which import theirs.
"""

from __future__ import annotations

from django.db import transaction

from webapp.moderation.models import MAX_TARGET_ID_CHARS, AuditEntry


class AuditOutsideTransaction(RuntimeError):
    """An entry must commit or roll back with the change it records."""


def audit_record(
    *,
    actor,
    action: str,
    target_type: str,
    target_id,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    ip: str | None = None,
) -> AuditEntry:
    """Append one entry. Call it inside the transaction that makes the change (it refuses to
    run outside one), so that the log never records a change that rolled back, nor misses one
    that committed."""
    if not transaction.get_connection().in_atomic_block:
        raise AuditOutsideTransaction(f"{action}: write the audit entry inside the change's atomic")
    signed_in = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor=actor if signed_in else None,
        actor_label=actor.get_username() if signed_in else "",
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:MAX_TARGET_ID_CHARS],
        before=before or {},
        after=after or {},
        reason=reason,
        ip=ip or None,
    )
