"""Exceptions of the API package. Handlers raise these; the app turns them into HTTP answers."""

from __future__ import annotations

from suvnet.errors import SuvnetError


class ApiError(SuvnetError):
    """Base of the API errors: ``status`` is the HTTP status, ``code`` a short machine code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotAuthenticatedError(ApiError):
    status = 401
    code = "not_authenticated"


class ForbiddenError(ApiError):
    status = 403
    code = "forbidden"


class NotFoundError(ApiError):
    status = 404
    code = "not_found"


class ConflictError(ApiError):
    status = 409
    code = "conflict"


class InvalidError(ApiError):
    status = 422
    code = "invalid"


class TooManyAttemptsError(ApiError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GatewayTimeoutError(ApiError):
    status = 504
    code = "gateway_timeout"


class UnavailableError(ApiError):
    status = 503
    code = "unavailable"
