"""HTTP access to Threatscore's v1 API: `GET {base}/api/score/<value>`.

Threatscore needs no credential. The value is percent-encoded as one path
segment (Cisco's relay inserted it raw), and every answer goes through one
status table: unknown observable → no data, anything else unexpected → an
error for that observable only.
"""
from urllib.parse import quote

from api import cache, ctim, http, ratelimit
from api.errors import (NotFoundError, ServiceUnavailableError, TooManyRequestsError,
                        UnexpectedResponseError)

TITLE = "Threatscore | Cyberprotect"
API_URL_VAR = "CYBERPROTECT_API_URL"
DEFAULT_API_URL = "https://threatscore.cyberprotect.cloud"
HEALTH_VALUE = "127.0.0.100"
# Since April 2021 Threatscore answers an unknown observable with HTTP 404
# and this text in `error.message` (exact wording unknown: match loosely).
UNKNOWN_MARKER = "observable not found"
_MESSAGE_MAX = 200


def base_url(ctx):
    return ctx.settings.get_url(API_URL_VAR, DEFAULT_API_URL)


def score_url(base, value):
    """The score URL of `value`, encoded as a single path segment."""
    return f"{base}/api/score/{quote(value, safe='')}"


def _message(response):
    """Threatscore's `error.message` (or `error.details`), else ''."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        text = error.get("message") or error.get("details") or ""
    else:
        text = error or ""
    return ctim.clip(text, _MESSAGE_MAX) or ""


def read(response):
    """The score document in `response`, or None when the observable is unknown."""
    status = response.status_code
    if 200 <= status < 300:
        body = http.json_body(response, TITLE)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                f"{TITLE} answered a JSON {type(body).__name__}, not a score object")
        return body
    message = _message(response)
    suffix = f": {message}" if message else ""
    if status == 404:
        if UNKNOWN_MARKER in (message or response.text[:_MESSAGE_MAX]).lower():
            return None
        raise NotFoundError(
            f"{TITLE} API not found (HTTP 404{suffix}); check {API_URL_VAR}")
    if status == 429:
        wait = ratelimit.retry_after(response)
        later = f"; retry in {wait:.0f} s" if wait else ""
        raise TooManyRequestsError(f"{TITLE} rate limit reached (HTTP 429){later}")
    if status >= 500:
        raise ServiceUnavailableError(
            f"{TITLE} is not available now (HTTP {status}{suffix})")
    raise UnexpectedResponseError(f"{TITLE} answered HTTP {status}{suffix}")


def fetch_score(ctx, value):
    """The score document of `value` (cached), or None when Threatscore does
    not know it."""
    return cache.fetch(ctx, "cyberprotect", "score", value, lambda: score(ctx, value),
                       scope=(base_url(ctx),))


def score(ctx, value):
    """`fetch_score` without the cache (health asks live)."""
    return read(http.request(
        ctx, TITLE, "GET", score_url(base_url(ctx), value),
        session_name="cyberprotect",
        # A 429 closes the gate for the tokens with these claims (usually `{}`),
        # so later calls fail fast instead of hammering Threatscore.
        gate=ratelimit.RateGate.for_credential("cyberprotect", ctx),
        headers={"Accept": "application/json"}))
