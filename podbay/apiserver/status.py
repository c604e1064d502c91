"""API errors as Kubernetes `Status` bodies (metav1.Status), pure functions."""
from __future__ import annotations

import errno
from typing import Any

from podbay.api.errors import FieldError, StorageFull


class ObjectInvalid(Exception):
    """422 Invalid for one object: Kubernetes' `NewInvalid(kind, name, errs)`."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, errors: list[FieldError]) -> None:
        self.kind, self.name, self.errors = kind, name, list(errors)
        details = ", ".join(str(e) for e in self.errors)
        if len(self.errors) > 1:
            details = f"[{details}]"
        super().__init__(f'{kind} "{name}" is invalid: {details}')


_CAUSE_REASONS = (
    ("Required value", "FieldValueRequired"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Forbidden", "FieldValueForbidden"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Not found", "FieldValueNotFound"),
)


def _cause_reason(message: str) -> str:
    for prefix, reason in _CAUSE_REASONS:
        if message.startswith(prefix):
            return reason
    if message.startswith("unknown field") or "not declared in schema" in message:
        return "FieldValueUnknown"
    return "FieldValueInvalid"


def _field_message(error: FieldError) -> str:
    text = str(error)
    prefix = f"{error.path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def success_body(details: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    if details:
        body["details"] = details
    return body


def invalid_status(exc: ObjectInvalid) -> dict[str, Any]:
    causes = [
        {"reason": _cause_reason(_field_message(e)), "message": _field_message(e), "field": e.path}
        for e in exc.errors
    ]
    return status_body(
        422, "Invalid", str(exc), {"name": exc.name, "kind": exc.kind, "causes": causes}
    )


def error_status(exc: BaseException) -> dict[str, Any]:
    """A Status body for any API error: ours, podbay.api.errors', or an unexpected one."""
    if isinstance(exc, ObjectInvalid):
        return invalid_status(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        exc = StorageFull(str(exc))
    code = getattr(exc, "code", None)
    reason = getattr(exc, "reason", None)
    if isinstance(code, int) and isinstance(reason, str):
        details: dict[str, Any] = {}
        for attr in ("name", "kind", "group"):
            value = getattr(exc, attr, None)
            if value:
                details[attr] = value
        causes = getattr(exc, "details", {}).get("causes")
        if causes:  # server-side apply's conflicts, one cause per field
            details["causes"] = causes
        if hasattr(exc, "retry_after_seconds") and exc.retry_after_seconds:
            details["retryAfterSeconds"] = exc.retry_after_seconds
        message = getattr(exc, "message", None) or str(exc)
        return status_body(code, reason, message, details or None)
    return status_body(500, "InternalError", f"Internal error occurred: {exc}")


class HTTPError(Exception):
    """Statuses podbay.api.errors has no class for (405, 406, 415, 503 ...)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
