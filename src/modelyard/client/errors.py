"""What the client raises: the server's own error classes, plus a few of its own.

    ModelyardError (modelyard.errors)        answers carrying a code map to its classes:
    ├── NotFoundError, ConflictError, InvalidError, LimitError,
    │   UnauthenticatedError, ForbiddenError, StorageError
    └── ClientError          CLIENT      raised on this side, without a server answer to blame
        ├── UsageError       USAGE       bad local input: missing folder, bad params file, bad flag
        ├── TransferError    TRANSFER    the server was unreachable or kept failing, after retries
        └── IntegrityError   INTEGRITY   bytes do not hash to their digest (even after a refetch)

Foreign errors (httpx, OSError, JSON) are converted where they enter, as `raise … from exc`.
"""

from __future__ import annotations

import httpx

from modelyard.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    LimitError,
    ModelyardError,
    NotFoundError,
    StorageError,
    UnauthenticatedError,
)

__all__ = [
    "ClientError", "ConflictError", "ForbiddenError", "IntegrityError", "InvalidError", "LimitError",
    "ModelyardError", "NotFoundError", "StorageError", "TransferError", "UnauthenticatedError",
    "UsageError", "error_for", "from_response",
]


class ClientError(ModelyardError):
    """Raised by the client itself."""

    code = "CLIENT"


class UsageError(ClientError):
    """A bad local input: a missing folder, an unreadable params file, a malformed flag."""

    code = "USAGE"


class TransferError(ClientError):
    """The server could not be reached, or kept failing, after every retry."""

    code = "TRANSFER"


class IntegrityError(ClientError):
    """Bytes do not hash to the digest they were fetched under."""

    code = "INTEGRITY"


_BY_CODE: dict[str, type[ModelyardError]] = {
    cls.code: cls
    for cls in (NotFoundError, ConflictError, InvalidError, LimitError, UnauthenticatedError,
                ForbiddenError, StorageError)
}
_BY_STATUS: dict[int, type[ModelyardError]] = {
    400: InvalidError, 401: UnauthenticatedError, 403: ForbiddenError, 404: NotFoundError,
    409: ConflictError, 413: LimitError, 416: ConflictError, 503: StorageError,
}


def error_for(code: str | None, message: str, status: int | None = None) -> ModelyardError:
    """The exception for a server answer's `code` (or, without one, its HTTP status).

    Its message starts with the code, so a one-line report says what kind of failure it was.
    """
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status or 0) or ModelyardError
    label = cls.code if cls is not ModelyardError else (code or f"HTTP {status}")
    return cls(f"{label}: {message}")


def from_response(response: httpx.Response, what: str) -> ModelyardError:
    """The exception for an HTTP error answer `{"error", "code"}` to the request doing `what`."""
    code: str | None = None
    detail = ""
    if response.request.method != "HEAD":  # HEAD answers carry no body
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body["code"] if isinstance(body.get("code"), str) else None
            detail = str(body.get("error") or "")
    if not detail:
        detail = _REASONS.get(response.status_code, response.reason_phrase or "no reason given")
    return error_for(code, f"{what}: {detail}", response.status_code)


_REASONS = {
    401: "the server refused the token (missing, malformed, unknown or revoked)",
    403: "the token may not do this",
    404: "not found",
}
