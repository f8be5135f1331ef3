"""Sign-up abuse resistance: a banned person should not simply sign up again (docs/moderation.md).

Two checks on every sign-up (webapp.accounts.services.user_check_signup):

- **Email**: refused if, normalised, it is the email of an account with a ban or suspension in
  force. Normalised: lower case, a `+tag` dropped, and dots dropped for the domains that ignore
  them (CHORUS_SIGNUP_DOTLESS_DOMAINS, gmail.com and googlemail.com, which are one domain).
- **Address**: every login records a keyed digest of the client's address (`LoginAddress`; an
  HMAC with the secret key, never the address; IPv6 by its /64, which one person holds). A ban
  copies the banned account's digests of the last CHORUS_LOGIN_ADDRESS_DAYS into `SignupBlock`s
  that last CHORUS_SIGNUP_BLOCK_HOURS (or until the ban is lifted). A sign-up from one of them is
  refused with a message that says until when, or allowed and reported to the moderators
  (CHORUS_SIGNUP_BLOCK_ACTION: refuse, flag, off). Addresses are shared (a household, a
  university's NAT, a mobile carrier), so the block is short, says what to do, and can be
  turned into a flag where refusing costs too many innocent sign-ups.

Every refusal and every flag writes an audit entry (actor: nobody, the site itself).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from webapp.errors import ServiceError
from webapp.moderation.audit import audit_record
from webapp.moderation.models import LoginAddress, Report, Sanction, SignupBlock, TargetType

DIGEST_SALT = "chorus.moderation.client-address"
# Domains that are one mailbox namespace: addresses at either normalise to the first.
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


class SignupRefused(ServiceError):
    """A sign-up refused as a sanctioned person's: 403, with a message that says why."""

    status_code = 403


# --- Pure functions ---------------------------------------------------------------------------


def email_normalise(email: str, *, dotless_domains=None) -> str:
    """The mailbox an address reaches: lower case, without a `+tag`, and for domains that ignore
    dots in the local part, without them. "" for something that is not an address."""
    email = str(email or "").strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return ""
    domain = DOMAIN_ALIASES.get(domain, domain)
    local = local.split("+", 1)[0]
    dotless = {DOMAIN_ALIASES.get(d.lower(), d.lower()) for d in (dotless_domains or ())}
    if domain in dotless:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def _domains_of(normalised: str) -> list[str]:
    """The domains whose addresses may normalise to this one (the domain and its aliases)."""
    domain = normalised.rpartition("@")[2]
    return [domain, *(alias for alias, to in DOMAIN_ALIASES.items() if to == domain)]


def address_digest(address: str | None) -> str | None:
    """A client address as this module keeps it: HMAC-SHA256 with the secret key (so a leaked
    table does not give the addresses back, nor can anyone test a guess without the key). IPv6
    addresses by their /64, which one subscriber holds; None for what is not an address."""
    try:
        ip = ipaddress.ip_address(str(address or "").strip())
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    text = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    return salted_hmac(DIGEST_SALT, text, algorithm="sha256").hexdigest()


def _in_force(now: datetime) -> Q:
    """Sanctions in force now (as webapp.moderation.selectors.sanction_in_force)."""
    return Q(lifted_at__isnull=True, starts_at__lte=now) & (
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )


# --- Reads ------------------------------------------------------------------------------------


def sanctioned_account_with_email(*, email: str, now: datetime | None = None):
    """An account with a ban or suspension in force whose email normalises as this one, if any."""
    dotless = settings.SIGNUP_DOTLESS_DOMAINS
    wanted = email_normalise(email, dotless_domains=dotless)
    if not wanted:
        return None
    now = now or timezone.now()
    domains = Q()
    for domain in _domains_of(wanted):
        domains |= Q(email__iendswith=f"@{domain}")
    sanctioned = Sanction.objects.filter(_in_force(now)).values("user_id")
    # The first letter of the local part survives normalising: it narrows the candidates.
    candidates = get_user_model()._default_manager.filter(
        domains, email__istartswith=wanted[0], pk__in=sanctioned
    )
    for account in candidates.only("pk", "email", "username"):
        if email_normalise(account.email, dotless_domains=dotless) == wanted:
            return account
    return None


def signup_block_for(*, address: str | None, now: datetime | None = None) -> SignupBlock | None:
    """The block in force on this client address, if any: not expired, its ban not lifted."""
    digest = address_digest(address)
    if digest is None:
        return None
    now = now or timezone.now()
    return (
        SignupBlock.objects.filter(
            digest=digest, expires_at__gt=now, sanction__lifted_at__isnull=True
        )
        .select_related("sanction")
        .order_by("-expires_at")
        .first()
    )


# --- Checks -----------------------------------------------------------------------------------


def _audit_refusal(*, why: str, account_id, username: str, detail: dict) -> None:
    with transaction.atomic():
        audit_record(
            actor=None,
            action="signup.refused",
            target_type=TargetType.USER,
            target_id=account_id,
            after={"username": str(username)[:150], "why": why, **detail},
        )


def signup_check_email(*, email: str, username: str = "", now: datetime | None = None) -> None:
    """Refuses the email of an account that is banned or suspended now (normalised)."""
    account = sanctioned_account_with_email(email=email, now=now) if email else None
    if account is None:
        return
    _audit_refusal(why="email", account_id=account.pk, username=username, detail={})
    raise SignupRefused(
        "This email address belongs to an account that may not use Chorus at the moment, so it "
        "cannot be used for a new one.",
        code="email_sanctioned",
        field="email",
    )


def signup_check_address(
    *, address: str | None, username: str = "", now: datetime | None = None
) -> SignupBlock | None:
    """The block on this address, if sign-ups from it are to be flagged; refuses the sign-up if
    they are to be refused (CHORUS_SIGNUP_BLOCK_ACTION); None if the address is not blocked."""
    action = settings.SIGNUP_BLOCK_ACTION
    if action == "off":
        return None
    now = now or timezone.now()
    block = signup_block_for(address=address, now=now)
    if block is None or action == "flag":
        return block
    _audit_refusal(
        why="address",
        account_id=block.sanction.user_id,
        username=username,
        detail={"signup_block": block.pk},
    )
    raise SignupRefused(
        "Sign-ups from your network are paused until "
        f"{block.expires_at:%Y-%m-%d %H:%M} UTC, because an account banned for abuse signed in "
        "from it lately. If that was not you, sign up from another connection (mobile data, "
        "for example) or try again then.",
        code="signup_paused",
    )


# --- Writes -----------------------------------------------------------------------------------


def login_address_record(*, user, address: str | None, now: datetime | None = None) -> None:
    """Remember (as a digest) that the account signed in from this address; forget what is older
    than CHORUS_LOGIN_ADDRESS_DAYS. Call it on every login (page, token, sign-up)."""
    digest = address_digest(address)
    if digest is None or user is None or not user.is_authenticated:
        return
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.LOGIN_ADDRESS_DAYS)
    with transaction.atomic():
        LoginAddress.objects.update_or_create(
            user=user, digest=digest, defaults={"last_seen_at": now}
        )
        LoginAddress.objects.filter(last_seen_at__lt=cutoff).delete()


def signup_blocks_create(*, sanction: Sanction, now: datetime) -> int:
    """On a ban (in its transaction): block sign-ups from the addresses the account signed in
    from within CHORUS_LOGIN_ADDRESS_DAYS, for CHORUS_SIGNUP_BLOCK_HOURS. How many."""
    if settings.SIGNUP_BLOCK_HOURS <= 0:
        return 0
    SignupBlock.objects.filter(expires_at__lte=now).delete()
    since = now - timedelta(days=settings.LOGIN_ADDRESS_DAYS)
    digests = LoginAddress.objects.filter(user_id=sanction.user_id, last_seen_at__gte=since)
    expires_at = now + timedelta(hours=settings.SIGNUP_BLOCK_HOURS)
    blocks = [
        SignupBlock(digest=digest, sanction=sanction, created_at=now, expires_at=expires_at)
        for digest in digests.values_list("digest", flat=True)
    ]
    SignupBlock.objects.bulk_create(blocks)
    return len(blocks)


def signup_flag(*, user, block: SignupBlock, now: datetime | None = None) -> Report:
    """A sign-up from a blocked address, allowed (CHORUS_SIGNUP_BLOCK_ACTION=flag): reported to
    the moderators' queue by the site itself, and recorded in the audit log."""
    now = now or timezone.now()
    banned = block.sanction.user_id
    with transaction.atomic():
        audit_record(
            actor=None,
            action="signup.flagged",
            target_type=TargetType.USER,
            target_id=user.pk,
            after={"banned_account": banned, "signup_block": block.pk},
        )
        return Report.objects.create(
            reporter=None,
            target_type=TargetType.USER,
            target_id=str(user.pk),
            reason=Report.Reason.OTHER,
            details=(
                f"Automatic: signed up from an address that banned account #{banned} signed "
                "in from lately. Shared networks (universities, offices) give false alarms."
            ),
            created_at=now,
            updated_at=now,
        )
