"""HTTP access to AlienVault OTX (REST API v1, `X-OTX-API-KEY: <key>`)."""
from urllib.parse import quote

from api import cache, http, ratelimit
from api.errors import (AuthorizationError, ServiceUnavailableError,
                        TooManyRequestsError, UnexpectedResponseError)

TITLE = "AlienVault OTX"
ENV_VAR = "OTX_API_URL"
DEFAULT_URL = "https://otx.alienvault.com"

# CTIM type -> OTX indicator section type (the `{section_type}` path part).
SECTION_TYPES = {
    "ip": "IPv4", "ipv6": "IPv6", "domain": "domain", "hostname": "hostname",
    "url": "url", "md5": "file", "sha1": "file", "sha256": "file",
}


def base_url(ctx):
    """OTX's base URL (OTX_API_URL, default the public service)."""
    return ctx.settings.get_url(ENV_VAR, DEFAULT_URL)


def path_value(value):
    """A value as one path segment: `/`, `?`, `#`, spaces... percent-encoded.

    `@` and `:` stay as they are (IPv6, e-mail), as OTX's own links do.
    """
    return quote(value, safe="@:")


def _raise_for_status(response, missing_ok):
    """None for a readable answer, or the relay error for this status."""
    status = response.status_code
    if status == 200:
        return
    if status in (400, 404) and missing_ok:
        return
    if status in (401, 403):
        raise AuthorizationError(f"AlienVault OTX rejected the API key (HTTP {status})")
    if status == 429:
        wait = ratelimit.retry_after(response)
        hint = f"; retry in {wait:.0f} s" if wait else ""
        raise TooManyRequestsError(f"AlienVault OTX rate limit reached (HTTP 429){hint}")
    if status >= 500:
        raise ServiceUnavailableError(f"AlienVault OTX answered HTTP {status}")
    raise UnexpectedResponseError(f"AlienVault OTX answered HTTP {status}")


def get(ctx, path, params=None, missing_ok=True):
    """GET `{base}/api/v1/{path}`: the JSON object, or None for 400/404.

    Raises AuthorizationError (401/403), TooManyRequestsError (429),
    ServiceUnavailableError (5xx, unreachable), RequestTimeoutError and
    UnexpectedResponseError (other statuses, a body that is not a JSON object).
    """
    url = f"{base_url(ctx)}/api/v1/{path}"
    response = http.request(
        ctx, TITLE, "GET", url, session_name="otx", params=params,
        gate=ratelimit.RateGate.for_credential("otx", ctx),
        headers={"X-OTX-API-KEY": ctx.key, "Accept": "application/json"})
    _raise_for_status(response, missing_ok)
    if response.status_code != 200:
        return None
    body = http.json_body(response, TITLE)
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            "AlienVault OTX answered JSON that is not an object; its API changed")
    return body


def general(ctx, observable_type, value):
    """The `general` section of an indicator (pulses, validation), or None."""
    section = SECTION_TYPES[observable_type]
    return cache.fetch(ctx, "otx", f"general:{section}", value, lambda: get(
        ctx, f"indicators/{section}/{path_value(value)}/general"), scope=(base_url(ctx),))


def pulse_indicators(ctx, pulse_id, page, page_size):
    """One page `{count, next, results[]}` of a pulse's indicators, or None."""
    return cache.fetch(ctx, "otx", f"pulse-page:{page}:{page_size}", pulse_id, lambda: get(
        ctx, f"pulses/{quote(pulse_id, safe='')}/indicators",
        params={"sort": "-created", "limit": page_size, "page": page}),
        scope=(base_url(ctx),))


def user_me(ctx):
    """`GET /api/v1/user/me`: proves the key works (health)."""
    return get(ctx, "user/me", missing_ok=False)
