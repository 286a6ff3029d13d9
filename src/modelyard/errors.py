"""One error tree for modelyard. No web framework imports here.

    ModelyardError            code        HTTP
    ├── NotFoundError         NOT_FOUND    404
    ├── ConflictError         CONFLICT     409
    ├── InvalidError          INVALID      400
    ├── LimitError            LIMIT        400
    │   ├── BodyTooLargeError LIMIT        413
    │   └── RateLimitedError  RATE_LIMITED 429 (and Retry-After)
    ├── UnauthenticatedError  UNAUTHENTICATED 401
    │   └── TokenExpiredError TOKEN_EXPIRED   401
    ├── ForbiddenError        FORBIDDEN    403
    └── StorageError          UNAVAILABLE  503

Anything else raised while serving a request is a bug: it is logged with its traceback and the
client sees only `INTERNAL` and a generic message.
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Base of every error a client may see."""

    code = "INTERNAL"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ModelyardError):
    """The named model, version, alias or dataset does not exist."""

    code = "NOT_FOUND"
    http_status = 404


class ConflictError(ModelyardError):
    """The request contradicts the catalog's current state (duplicate, cycle, immutable)."""

    code = "CONFLICT"
    http_status = 409


class InvalidError(ModelyardError):
    """The request is malformed: bad name, bad ref, wrong param type."""

    code = "INVALID"
    http_status = 400


class LimitError(ModelyardError):
    """The request is too large or too expensive."""

    code = "LIMIT"
    http_status = 400


class BodyTooLargeError(LimitError):
    """A request body beyond the size the server reads."""

    http_status = 413


class RateLimitedError(LimitError):
    """Too many requests of one kind from one client: retry after `retry_after` seconds."""

    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnauthenticatedError(ModelyardError):
    """No valid credentials."""

    code = "UNAUTHENTICATED"
    http_status = 401


class TokenExpiredError(UnauthenticatedError):
    """A token past its `expiresAt`: the caller needs a new one (not a retry)."""

    code = "TOKEN_EXPIRED"


class ForbiddenError(ModelyardError):
    """Valid credentials, but not allowed."""

    code = "FORBIDDEN"
    http_status = 403


class StorageError(ModelyardError):
    """The blob store failed (disk full, S3 unreachable): retry later; nothing was half-stored."""

    code = "UNAVAILABLE"
    http_status = 503
