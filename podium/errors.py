"""Every error Podium raises on purpose, each with the HTTP status it is answered with.

    PodiumError                     500  the root; ``status`` and ``code`` are class attributes
    ├── InvalidRequest              400  the request is malformed (bad JSON, missing field)
    │   └── InvalidInput            400  the handler rejected the input (shape, type, value)
    ├── Unauthorized                401
    ├── Forbidden                   403
    ├── ModelNotFound               404  no such model or version (or route)
    ├── MethodNotAllowed            405  a route asked with the wrong method
    ├── Conflict                    409  already registered; still the default
    ├── PayloadTooLarge             413  body over ``max_body_bytes``
    ├── MisdirectedRequest          421  a Host header this server does not answer to
    ├── HandlerError                500  the handler raised something else
    │   └── ResponseTooLarge        500  the answer is over ``max_response_bytes``
    ├── ServiceUnavailable          503  answered with ``Retry-After``
    │   ├── QueueFull               503  the version's queue is at ``max_queue``
    │   ├── ModelNotReady           503  no live worker for the version yet
    │   ├── WorkerDied              503  the worker holding the request exited
    │   ├── ModelFailed             503  the version's loads failed past its budget
    │   └── ShuttingDown            503  the server is draining
    ├── RequestTimeout              504  no answer within ``request_timeout`` (or the client's)
    ├── ServerUnreachable           503  the client could not reach the server (client side)
    ├── ClientDisconnected          499  the client left; nothing is sent
    ├── ArchiveError                     an archive is corrupt, tampered or unsafe (CLI, store)
    ├── RequirementsError           500  an archive's requirements could not be installed
    └── ConfigError                      a configuration file cannot be used (CLI)

Errors cross the process boundary as ``ErrorInfo`` (a plain, picklable record), never as
live exception objects from model code, and are matched on their class, never on text.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict


class ErrorBody(TypedDict):
    """The JSON body of every error answer."""

    code: int
    type: str
    message: str


class PodiumError(Exception):
    """Root of Podium's errors; ``status`` is the HTTP status it is answered with."""

    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    @property
    def code(self) -> str:
        return type(self).__name__

    def body(self) -> ErrorBody:
        return {"code": self.status, "type": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class InvalidRequest(PodiumError):
    status = 400
    default_message = "Malformed request"


class InvalidInput(InvalidRequest):
    """Raise from a handler to answer 400 with a message naming what is wrong."""

    default_message = "Invalid input"


class Unauthorized(PodiumError):
    status = 401
    default_message = "Missing or invalid token"


class Forbidden(PodiumError):
    status = 403
    default_message = "Forbidden"


class ModelNotFound(PodiumError):
    status = 404
    default_message = "Model not found"


class MethodNotAllowed(PodiumError):
    status = 405
    default_message = "Method not allowed"


class Conflict(PodiumError):
    status = 409
    default_message = "Conflict with the current state"


class PayloadTooLarge(PodiumError):
    status = 413
    default_message = "Request body too large"


class MisdirectedRequest(PodiumError):
    """The Host header names neither the bound address, a loopback name, nor an allowed
    host (a web page reaching a loopback server through DNS rebinding sends such a name)."""

    status = 421
    default_message = "This server does not answer to that Host"


class HandlerError(PodiumError):
    status = 500
    default_message = "The model's handler failed"


class ResponseTooLarge(HandlerError):
    default_message = "The model's answer is too large"


class ServiceUnavailable(PodiumError):
    status = 503
    default_message = "Service unavailable"
    retry_after: ClassVar[int] = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class QueueFull(ServiceUnavailable):
    default_message = "The model's queue is full"


class ModelNotReady(ServiceUnavailable):
    default_message = "The model has no ready worker"


class WorkerDied(ServiceUnavailable):
    default_message = "The worker serving this request exited; retry"


class ModelFailed(ServiceUnavailable):
    """The version's workers failed to load too many times in a row; it no longer retries
    until it is registered again or scaled. The message names the last error."""

    default_message = "The model failed to load"
    retry_after = 30


class ShuttingDown(ServiceUnavailable):
    default_message = "The server is shutting down"


class RequestTimeout(PodiumError):
    status = 504
    default_message = "The request timed out"


class ServerUnreachable(PodiumError):
    """Raised by the client (never answered by a server) when no answer could be had: the
    connection was refused or lost, the name did not resolve. The message names the URL and
    the reason: ``cannot reach http://127.0.0.1:8080: connection refused``. Its status is
    503, what a gateway answers for a server it cannot reach, so code that turns Podium's
    errors into HTTP answers needs no special case."""

    status = 503
    default_message = "The server cannot be reached"


class ClientDisconnected(PodiumError):
    status = 499
    default_message = "The client closed the connection"


class ArchiveError(PodiumError):
    """An archive that cannot be trusted or read; the message names the problem."""

    status = 400
    default_message = "Invalid archive"


class RequirementsError(PodiumError):
    """An archive's requirements file could not be installed; the message has pip's words."""

    status = 500
    default_message = "The model's requirements could not be installed"


class ConfigError(PodiumError):
    """A configuration file Podium cannot use; the message names the file and the key."""

    status = 400
    default_message = "Invalid configuration"


ERRORS_BY_CODE: dict[str, type[PodiumError]] = {
    cls.__name__: cls
    for cls in (
        PodiumError,
        InvalidRequest,
        InvalidInput,
        Unauthorized,
        Forbidden,
        ModelNotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        MisdirectedRequest,
        HandlerError,
        ResponseTooLarge,
        ServiceUnavailable,
        QueueFull,
        ModelNotReady,
        WorkerDied,
        ModelFailed,
        ShuttingDown,
        RequestTimeout,
        ServerUnreachable,
        ClientDisconnected,
        ArchiveError,
        RequirementsError,
        ConfigError,
    )
}


def from_code(code: str, message: str) -> PodiumError:
    """Rebuild an error that crossed a process boundary as its class name and message."""
    return ERRORS_BY_CODE.get(code, HandlerError)(message)


ERRORS_BY_STATUS: dict[int, type[PodiumError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: ModelNotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    421: MisdirectedRequest,
    503: ServiceUnavailable,
    504: RequestTimeout,
}


def from_status(status: int, message: str) -> PodiumError:
    """An error told only by its status and message (a V2 ``{"error": ...}`` answer)."""
    return ERRORS_BY_STATUS.get(status, HandlerError)(message)
