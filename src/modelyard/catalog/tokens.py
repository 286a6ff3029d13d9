"""Bearer tokens: created once (the secret is shown once), stored only as a SHA-256 hash.

Secrets carry 256 random bits, so a fast hash is enough (as for GitHub's tokens): guessing
is hopeless and a leaked table reveals no usable secret. Lookup is by hash; the stored hash is
then compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from modelyard.catalog import audit
from modelyard.catalog.refs import parse_name
from modelyard.db.tables import TokenRow
from modelyard.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    TokenExpiredError,
    UnauthenticatedError,
)

PREFIX = "myd_"
TOKEN_RE = re.compile(r"myd_[A-Za-z0-9_-]{43}")  # fullmatch, as every pattern
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# `last_used_at` is written at most this often per token: an authenticated read stays a read.
LAST_USED_EVERY = timedelta(minutes=1)


class Scope(enum.Enum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        order = [Scope.READ, Scope.WRITE, Scope.ADMIN]
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's name, scope and optional namespace."""

    name: str
    scope: Scope
    namespace: str | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_token_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise InvalidError(f"invalid token name {name!r}: 1-64 letters, digits, '.', '_' or '-'")
    return name


def check_expiry(expires_at: datetime | None) -> datetime | None:
    """An expiry must name its time zone and lie in the future."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        raise InvalidError("expiresAt needs a time zone, e.g. 2027-01-01T00:00:00Z")
    if expires_at <= datetime.now(UTC):
        raise InvalidError(f"expiresAt {expires_at.isoformat()} is not in the future")
    return expires_at.astimezone(UTC)


async def create_token(
    name: str, scope: Scope, namespace: str | None = None, *, actor: str, secret: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, TokenRow]:
    """Create a token; return its secret (shown once) and its row. CONFLICT when the name exists."""
    check_token_name(name)
    expires_at = check_expiry(expires_at)
    if namespace is not None:
        namespace = parse_name(namespace, "namespace").name
    secret = secret or PREFIX + secrets.token_urlsafe(32)
    if not TOKEN_RE.fullmatch(secret):
        raise InvalidError("a token secret must be 'myd_' and 43 URL-safe base64 characters")
    try:
        async with in_transaction():
            row = await TokenRow.create(
                name=name, scope=scope.value, namespace=namespace, secret_hash=_hash(secret),
                prefix=secret[:10], created_by=actor, expires_at=expires_at,
            )
            await audit.record(
                actor, audit.EventKind.TOKEN_CREATED, "Token", name,
                changes={"scope": {"before": None, "after": scope.value},
                         "namespace": {"before": None, "after": namespace},
                         "expiresAt": {"before": None,
                                       "after": expires_at.isoformat() if expires_at else None}},
            )
    except IntegrityError as exc:
        raise ConflictError(f"a token named {name!r} already exists") from exc
    return secret, row


async def list_tokens() -> list[TokenRow]:
    """Every token, revoked ones included, by name. No secrets: only their hashes are stored."""
    return await TokenRow.all().order_by("name")


async def revoke_token(name: str, *, actor: str) -> TokenRow:
    """Revoke a token; it stops working at once. NOT_FOUND or CONFLICT (already revoked)."""
    check_token_name(name)
    async with in_transaction():
        row = await TokenRow.get_or_none(name=name)
        if row is None:
            raise NotFoundError(f"no token named {name!r}")
        if row.revoked_at is not None:
            raise ConflictError(f"token {name!r} is already revoked")
        row.revoked_at = datetime.now(UTC)
        await row.save(update_fields=["revoked_at"])
        await audit.record(
            actor, audit.EventKind.TOKEN_REVOKED, "Token", name,
            changes={"revokedAt": {"before": None, "after": row.revoked_at.isoformat()}},
        )
        return row


async def authenticate(secret: str) -> Principal:
    """The principal a presented secret stands for; UNAUTHENTICATED when malformed, unknown or
    revoked, TOKEN_EXPIRED past its expiry. Notes when it was last used (at most once a minute)."""
    if not TOKEN_RE.fullmatch(secret):
        raise UnauthenticatedError("malformed token: expected 'Bearer myd_…'")
    digest = _hash(secret)
    row = await TokenRow.get_or_none(secret_hash=digest)
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        raise UnauthenticatedError("unknown token")
    if row.revoked_at is not None:
        raise UnauthenticatedError(f"token {row.name!r} was revoked")
    now = datetime.now(UTC)
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenExpiredError(f"token {row.name!r} expired at {row.expires_at.isoformat()}; "
                                "ask an admin for a new one")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        # Conditional, so concurrent requests of one token write it once.
        await TokenRow.filter(id=row.id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
        ).update(last_used_at=now)
    return Principal(row.name, Scope(row.scope), row.namespace)


async def seed_admin_token(secret: str) -> None:
    """Make `secret` (MODELYARD_ADMIN_TOKEN) a working admin token named `admin-env`."""
    if not TOKEN_RE.fullmatch(secret):
        raise InvalidError("MODELYARD_ADMIN_TOKEN must be 'myd_' and 43 URL-safe base64 characters")
    digest = _hash(secret)
    async with in_transaction():
        row = await TokenRow.get_or_none(name="admin-env")
        if row is not None and row.secret_hash == digest and row.revoked_at is None:
            return
        if row is not None:
            await row.delete()
    try:
        await create_token("admin-env", Scope.ADMIN, actor="MODELYARD_ADMIN_TOKEN", secret=secret)
    except ConflictError:
        pass  # another replica starting with the same setting got there first


async def check_active(name: str) -> None:
    """Raise unless the token called `name` still exists, is not revoked and has not expired
    (for open subscriptions, which authenticated once)."""
    row = await TokenRow.get_or_none(name=name)
    if row is None or row.revoked_at is not None:
        raise UnauthenticatedError(f"token {name!r} was revoked")
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        raise TokenExpiredError(f"token {name!r} expired at {row.expires_at.isoformat()}")
