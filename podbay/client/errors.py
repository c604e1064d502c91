"""A Kubernetes Status body turned back into the podbay.api.errors exception."""
from __future__ import annotations

import json
from typing import Any

from podbay.api import errors
from podbay.api.errors import FieldError

_BY_REASON: dict[str, type[Exception]] = {
    "NotFound": errors.NotFound,
    "AlreadyExists": errors.AlreadyExists,
    "Conflict": errors.Conflict,
    "Gone": errors.Gone,
    "Expired": errors.Gone,
    "BadRequest": errors.BadRequest,
    "Forbidden": errors.Forbidden,
    "Unauthorized": errors.Unauthorized,
    "ServiceUnavailable": errors.ServiceUnavailable,
    "Timeout": errors.Timeout,
}
_BY_CODE: dict[int, type[Exception]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    410: errors.Gone,
    503: errors.ServiceUnavailable,
    504: errors.Timeout,
}


def error_from_status(status: dict[str, Any]) -> Exception:
    code = int(status.get("code") or 500)
    reason = status.get("reason") or ""
    message = status.get("message") or reason or f"HTTP {code}"
    details = status.get("details") or {}
    if code == 422 or reason == "Invalid":
        causes = details.get("causes") or []
        field_errors = [
            FieldError(c.get("field", ""), None, c.get("message", "")) for c in causes
        ] or [FieldError("", None, message)]
        exc: Exception = errors.Invalid(field_errors)
    else:
        cls = _BY_REASON.get(reason) or _BY_CODE.get(code)
        if cls is None:
            exc = errors.APIError(message)
        else:
            exc = cls(message)
    # The server's words win over whatever the class would have said.
    for attr, value in (("code", code), ("reason", reason), ("message", message),
                        ("name", details.get("name")), ("kind", details.get("kind"))):
        if value:
            try:
                setattr(exc, attr, value)
            except AttributeError:
                pass
    return exc


def error_from_response(code: int, raw: bytes) -> Exception:
    """The error a failed response's body carries: its Status, else its text."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("kind") != "Status":
        body = {"code": code, "message": raw.decode(errors="replace").strip() or f"HTTP {code}"}
    body.setdefault("code", code)
    return error_from_status(body)
