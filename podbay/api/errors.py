"""Field errors and the API's error kinds, shaped like Kubernetes' field.Error and StatusError."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with one field: `spec.containers[1].name: "Web": must be ...`."""

    path: str
    value: Any
    message: str

    def __str__(self) -> str:
        """Kubernetes' field.Error text: the type, then the value (except for the types that never
        show one), then the detail — `path: Invalid value: "Web": a lowercase ...`. A message
        without a type is an invalid value's detail."""
        if self.value is None or self.value == "" or self.message.startswith(_VALUELESS):
            return f"{self.path}: {self.message}"
        shown = json.dumps(self.value) if isinstance(self.value, (str, int, float, bool)) else repr(self.value)
        for kind in _TYPES:
            if self.message == kind:
                return f"{self.path}: {kind}: {shown}"
            if self.message.startswith(f"{kind}: "):
                return f"{self.path}: {kind}: {shown}: {self.message[len(kind) + 2:]}"
        return f"{self.path}: Invalid value: {shown}: {self.message}"


# field.ErrorType strings: those whose text shows the value, and those whose text never does.
_TYPES = ("Invalid value", "Unsupported value", "Duplicate value", "Not found", "Too many")
_VALUELESS = ("Required value", "Forbidden", "Too long", "Internal error")


class Invalid(ValueError):
    """An object that fails decoding or validation; carries every field error found."""

    def __init__(self, errors: list[FieldError], what: str = "object") -> None:
        self.errors = list(errors)
        self.what = what
        super().__init__("\n".join(str(e) for e in self.errors) or f"{what} is invalid")


class APIError(Exception):
    """An error the API reports as a metav1.Status."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, kind: str = "", name: str = "",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind, self.name = kind, name
        self.details = dict(details or {})
        if kind:
            self.details.setdefault("kind", kind)
        if name:
            self.details.setdefault("name", name)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


class BadRequest(APIError):
    code, reason = 400, "BadRequest"


class Unauthorized(APIError):
    code, reason = 401, "Unauthorized"


class Forbidden(APIError):
    code, reason = 403, "Forbidden"


class NotFound(APIError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(APIError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(APIError):
    code, reason = 409, "AlreadyExists"


class Conflict(APIError):
    code, reason = 409, "Conflict"


class Gone(APIError):
    code, reason = 410, "Expired"


class UnprocessableEntity(APIError):
    code, reason = 422, "Invalid"


class TooManyRequests(APIError):
    code, reason = 429, "TooManyRequests"


class InternalError(APIError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(APIError):
    code, reason = 503, "ServiceUnavailable"



class Timeout(APIError):
    """The store could not complete the request in time (etcd without a quorum): it may still
    be applied, so a client reads before it writes again (Kubernetes' StatusReasonTimeout)."""

    code, reason = 504, "Timeout"


class StorageFull(ServiceUnavailable):
    """A write the disk has no room for: nothing was stored, and the client should retry
    once space is freed (503 with Retry-After, which client-go honours)."""

    retry_after_seconds = 5

    def __init__(self, cause: str = "no space left on device") -> None:
        super().__init__(f"insufficient storage: the API server's store cannot write ({cause}); "
                         "nothing was stored, retry once disk space is freed")
