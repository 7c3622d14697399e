"""The relay's error hierarchy: each class carries the contract's `code`.

Every `RelayError` becomes one entry of the `{"errors": [...]}` envelope,
always with HTTP 200 (the platform reads errors from the body).
"""


class RelayError(Exception):
    code = "unknown"
    type = "fatal"

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def json(self):
        return {"type": self.type, "code": self.code, "message": self.message}


class AuthorizationError(RelayError):
    code = "authorization error"

    def __init__(self, reason):
        super().__init__(f"Authorization failed: {reason}")


class InvalidArgumentError(RelayError):
    code = "invalid argument"


class NotFoundError(RelayError):
    code = "not found"


class TooManyRequestsError(RelayError):
    """Upstream rate limiting; the smoke test tolerates exactly this code."""

    code = "too many requests"


class RequestTimeoutError(RelayError):
    code = "request timeout"


class ServiceUnavailableError(RelayError):
    code = "service unavailable"


class UnexpectedResponseError(RelayError):
    """The provider answered something the relay cannot read."""

    code = "unexpected response"


class ProviderUnavailableError(RelayError):
    code = "provider unavailable"


class HealthCheckError(RelayError):
    code = "health check failed"


class ConfigurationError(RelayError):
    """A relay setting the request needs is missing or wrong."""

    code = "configuration error"
