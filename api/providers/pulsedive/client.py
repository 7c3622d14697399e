"""Pulsedive HTTP: URLs, the status -> error table and the rate gate.

Only HTTP lives here; `mapping` turns the answers into CTIM. The API key
travels as the `key` query/form parameter, as Pulsedive documents it; it is
never put into an error message or a log line.
"""
import re

from api import cache, http, ratelimit
from api.errors import (AuthorizationError, RequestTimeoutError,
                        ServiceUnavailableError, TooManyRequestsError,
                        UnexpectedResponseError)

TITLE = "Pulsedive"
URL_SETTING = "PULSEDIVE_API_URL"
DEFAULT_URL = "https://pulsedive.com/api"
HEALTH_IID = 2          # the indicator id Cisco's relay probes for health
NO_DATA = (400, 404, 406)
_MAX_MESSAGE = 300

# "API rate limit exceeded: 1 requests per second. Visit pulsedive.com/api ..."
_LIMIT_TEXT = re.compile(r"(\d+)\s+requests?\s+per\s+(second|minute|hour|day|month)",
                         re.IGNORECASE)
# How long a key stays closed after a 429 without Retry-After, by period.
# Day and month quotas are re-probed hourly rather than trusted for days.
_CLOSED_FOR = {"minute": 60.0, "hour": 3600.0, "day": 3600.0, "month": 3600.0}
_DEFAULT_CLOSED_FOR = 60.0


def base_url(ctx):
    return ctx.settings.get_url(URL_SETTING, DEFAULT_URL)


def _int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def error_text(response):
    """Pulsedive's `{"error": ...}` text of `response`, or ""."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"].strip()[:_MAX_MESSAGE]
    return ""


class PulsediveGate(ratelimit.RateGate):
    """Per-key rate state: reads `X-Requests-Remaining-*`, paces per-second
    limits, and closes the key after a 429 for a longer period."""

    def observe(self, response):
        headers = response.headers
        second = _int(headers.get("X-Requests-Remaining-Second"))
        if response.status_code == 429:
            self._closed(response)
            return
        if second is not None:
            # The limit is at least what is left plus this call.
            self.pace(max(self.per_second or 1, second + 1), 1.0 if second == 0 else 0.0)
        for period, adjective in (("Day", "daily"), ("Month", "monthly")):
            if _int(headers.get(f"X-Requests-Remaining-{period}")) == 0:
                self.block(_CLOSED_FOR[period.lower()],
                           f"{TITLE}'s {adjective} request quota for this API key "
                           "is used up")

    def _closed(self, response):
        message = error_text(response) or f"{TITLE} rate limit exceeded"
        match = _LIMIT_TEXT.search(message)
        wait = ratelimit.retry_after(response)
        if match and match.group(2).lower() == "second" and (wait or 0) <= self.max_sleep:
            self.pace(max(int(match.group(1)), 1), max(wait or 0.0, 1.0))
            return
        if wait is None:
            wait = _CLOSED_FOR.get(match.group(2).lower(), _DEFAULT_CLOSED_FOR) \
                if match else _DEFAULT_CLOSED_FOR
        self.block(wait, message)


def gate(ctx):
    """The rate gate of this request's API key."""
    return PulsediveGate.for_credential("pulsedive", ctx)


def _send(ctx, method, path, attempts=3, **kwargs):
    """One Pulsedive call; a per-second 429 is retried in a paced slot."""
    key_gate = gate(ctx)
    url = f"{base_url(ctx)}/{path}"
    for attempt in range(attempts):
        response = http.request(ctx, TITLE, method, url, gate=key_gate, **kwargs)
        # A 429 that closed the key for longer than a short pause is final.
        if (response.status_code != 429 or attempt + 1 == attempts
                or key_gate.blocked_for() > key_gate.max_sleep):
            break
    return response


def _answer(response):
    """The JSON object of a Pulsedive answer, None for "no data", or an error."""
    status = response.status_code
    message = error_text(response)
    if status == 200:
        body = http.json_body(response, TITLE)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                f"{TITLE} answered HTTP 200 with JSON that is not an object")
        if "error" in body:
            return _error_in_body(body)
        return body
    if status in NO_DATA:
        # Pulsedive's own "Indicator not found." is JSON; an HTML 404 means a
        # wrong base URL, which must not pass for "no data".
        http.json_body(response, TITLE)
        return None
    if status in (401, 403):
        raise AuthorizationError(
            f"{TITLE} rejected the API key ({message or f'HTTP {status}'})")
    if status == 408 or "still processing" in message.lower():
        raise RequestTimeoutError(_processing(message))
    if status == 429:
        raise TooManyRequestsError(message or f"{TITLE} rate limit exceeded")
    detail = f": {message}" if message else ""
    if status >= 500:
        raise ServiceUnavailableError(f"{TITLE} answered HTTP {status}{detail}")
    raise UnexpectedResponseError(f"{TITLE} answered HTTP {status}{detail}")


def _processing(message):
    return (f"{TITLE} is still processing this indicator "
            f"({message or 'Request(s) still processing.'}); try again shortly")


def _error_in_body(body):
    message = str(body.get("error")).strip()[:_MAX_MESSAGE]
    if "still processing" in message.lower():
        raise RequestTimeoutError(_processing(message))
    if message.lower().rstrip(".") == "indicator not found":
        return None
    raise UnexpectedResponseError(f"{TITLE} answered an error: {message}")


def info(ctx, value):
    """info.php for indicator `value`: its object, or None when Pulsedive has none."""
    return cache.fetch(ctx, "pulsedive", "info", value, lambda: _answer(_send(
        ctx, "GET", "info.php", params={"indicator": value, "key": ctx.key})),
        scope=(base_url(ctx),))


def links(ctx, value):
    """info.php `get=links` for `value` ({"Active DNS": [...], ...}) or None."""
    return cache.fetch(ctx, "pulsedive", "links", value, lambda: _answer(_send(
        ctx, "GET", "info.php", params={"indicator": value, "get": "links", "key": ctx.key})),
        scope=(base_url(ctx),))


def health(ctx):
    """One authenticated call; raises the mapped error when it fails."""
    _answer(_send(ctx, "GET", "info.php", params={"iid": HEALTH_IID, "key": ctx.key}))


def scan(ctx, value, probe=False):
    """Queue a Pulsedive scan (analyze.php) of `value`; returns the queue id.

    The value's cached lookups are dropped, so the next observe shows the scan.
    """
    response = _send(ctx, "POST", "analyze.php",
                     data={"value": value, "probe": "1" if probe else "0",
                           "key": ctx.key})
    body = _answer(response)
    if body is None:
        raise UnexpectedResponseError(f"{TITLE} did not accept the scan request")
    if "qid" not in body:
        raise UnexpectedResponseError(
            f"The data structure of the {TITLE} API has changed (no 'qid' in the "
            "scan answer)")
    cache.invalidate(ctx, "pulsedive", value)
    return body["qid"]
