"""Who may do what: the access rules, in one place, reading only the principal and settings.

- Reads are anonymous unless `MODELYARD_PUBLIC_READ=false`; then they need a `read` token.
- Every write needs `write`; tokens and hard deletes need `admin`.
- A token bound to a namespace writes only inside it, and reads only inside it when reads are
  private.
- A bad token (malformed, unknown, revoked) is refused even where none is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.catalog import tokens
from modelyard.catalog.refs import namespace_of
from modelyard.catalog.tokens import Principal, Scope
from modelyard.errors import ForbiddenError, ModelyardError, UnauthenticatedError
from modelyard.ratelimit import RateLimiter


@dataclass(frozen=True)
class Caller:
    """The principal of a request (None: anonymous) and why its credentials failed, if they did."""

    principal: Principal | None = None
    auth_error: ModelyardError | None = None

    @property
    def actor(self) -> str:
        return self.principal.name if self.principal else "anonymous"


async def caller_for(authorization: str | None, *, client: str = "",
                     failures: RateLimiter | None = None) -> Caller:
    """Who an `Authorization: Bearer …` value stands for; a bad one is remembered, not ignored.

    With `failures`, each failure counts against `client` (its address); once it has failed too
    often, its credentials are not even looked up and it is remembered as RATE_LIMITED.
    """
    if not authorization:
        return Caller()
    try:
        if failures is not None:
            failures.check(client, "failed authentications")
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise UnauthenticatedError("the Authorization header must be 'Bearer <token>'")
        return Caller(principal=await tokens.authenticate(secret.strip()))
    except UnauthenticatedError as exc:
        if failures is not None:
            failures.hit(client)
        return Caller(auth_error=exc)
    except ModelyardError as exc:
        return Caller(auth_error=exc)


def _authenticated(caller: Caller, needed: Scope, what: str) -> Principal:
    if caller.auth_error is not None:
        raise caller.auth_error
    if caller.principal is None:
        raise UnauthenticatedError(f"{what} needs a token with scope {needed.value}: send 'Authorization: Bearer …'")
    if not caller.principal.scope.allows(needed):
        raise ForbiddenError(
            f"token {caller.principal.name!r} has scope {caller.principal.scope.value}; {what} needs {needed.value}"
        )
    return caller.principal


def _inside(principal: Principal, target: str | None, what: str) -> None:
    if principal.namespace is None or target is None:
        return
    if namespace_of(target) != principal.namespace:
        raise ForbiddenError(
            f"token {principal.name!r} is bound to namespace {principal.namespace!r}; "
            f"{what} {target!r} is outside it"
        )


def check_read(caller: Caller, public_read: bool, target: str | None = None) -> None:
    """Raise unless the caller may read `target` (a name or ref; None: the catalog at large)."""
    if caller.auth_error is not None:
        raise caller.auth_error
    if public_read:
        return
    principal = _authenticated(caller, Scope.READ, "reading")
    _inside(principal, target, "reading")


def read_namespace(caller: Caller, public_read: bool) -> str | None:
    """The namespace lists must be narrowed to, or None for all."""
    if public_read or caller.principal is None:
        return None
    return caller.principal.namespace


def check_write(caller: Caller, target: str | None) -> None:
    """Raise unless the caller may change `target` (a model or dataset name, or a ref)."""
    principal = _authenticated(caller, Scope.WRITE, "writing")
    _inside(principal, target, "writing")


def check_admin(caller: Caller, what: str) -> None:
    """Raise unless the caller holds an admin token not bound to a namespace."""
    principal = _authenticated(caller, Scope.ADMIN, what)
    if principal.namespace is not None:
        raise ForbiddenError(
            f"token {principal.name!r} is bound to namespace {principal.namespace!r}; "
            f"{what} needs an admin token not bound to a namespace"
        )
