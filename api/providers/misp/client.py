"""HTTP access to a MISP instance (REST API, `Authorization: <key>`)."""
from api import http, ratelimit
from api.errors import (AuthorizationError, ConfigurationError, NotFoundError,
                        RelayError, ServiceUnavailableError, TooManyRequestsError,
                        UnexpectedResponseError)
from api.providers.misp import mapping

TITLE = "MISP"


def base_url(ctx):
    url = ctx.settings.get_url("API_URL")
    if not url:
        raise ConfigurationError(
            "API_URL is not set: the relay does not know which MISP to ask")
    return url


def _tls(ctx):
    """`verify` for requests: a CA bundle path, or MISP_VERIFY_TLS (default on)."""
    bundle = ctx.settings.get_str("MISP_CA_BUNDLE")
    if bundle:
        return bundle
    return ctx.settings.get_bool("MISP_VERIFY_TLS", True)


class MispGate(ratelimit.RateGate):
    """MISP's optional per-role rate limit: X-Rate-Limit-Remaining/-Reset."""

    def observe(self, response):
        remaining = response.headers.get("X-Rate-Limit-Remaining")
        reset = response.headers.get("X-Rate-Limit-Reset")
        if response.status_code == 429 or remaining == "0":
            seconds = ratelimit.seconds(reset)
            if seconds is None:
                seconds = ratelimit.retry_after(response, ratelimit.DEFAULT_CLOSED)
            self.block(seconds, f"MISP rate limit reached; it resets in {seconds:.0f} s")


def _message(response):
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("name") or "").strip()
    return ""


def _raise_for_status(response):
    status = response.status_code
    if status == 200:
        return
    detail = _message(response)
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        raise AuthorizationError(f"MISP rejected the API key (HTTP {status}{suffix})")
    if status == 405 and "permission" in detail.lower():
        raise AuthorizationError(f"MISP refused the request (HTTP 405{suffix})")
    if status == 429:
        raise TooManyRequestsError(f"MISP rate limit exceeded{suffix}")
    if status == 404:
        raise NotFoundError(f"MISP answered 404 for {response.path}"
                            " - check API_URL")
    if status >= 500:
        raise ServiceUnavailableError(f"MISP answered HTTP {status}{suffix}")
    raise UnexpectedResponseError(f"MISP answered HTTP {status}{suffix}")


def _send(ctx, method, path, payload=None):
    url = f"{base_url(ctx)}/{path}"
    return http.request(
        ctx, TITLE, method, url, session_name="misp",
        gate=MispGate.for_credential("misp", ctx),
        json=payload, verify=_tls(ctx),
        headers={"Authorization": ctx.key, "Accept": "application/json",
                 "Content-Type": "application/json"})


def call(ctx, method, path, payload=None):
    """One authenticated MISP call; returns the decoded JSON body."""
    response = _send(ctx, method, path, payload)
    _raise_for_status(response)
    return http.json_body(response, TITLE)


def search_events(ctx, filters, values, limit, page):
    """`POST /events/restSearch` for any of `values`: (events, problems).

    `filters` are the restSearch filters chosen by the provider; events are
    parsed (shape-checked) by `mapping.parse_events`, so one malformed event
    is a problem of its own, never the loss of the others.
    """
    payload = {"returnFormat": "json", **filters, "value": list(values),
               "limit": limit, "page": page}
    body = call(ctx, "POST", "events/restSearch", payload)
    if isinstance(body, dict) and isinstance(body.get("response"), list):
        body = body["response"]
    if not isinstance(body, list):
        raise UnexpectedResponseError(
            "MISP restSearch answer has no event list; its data structure changed")
    return mapping.parse_events(body)


def check_warninglists(ctx, values):
    """`POST /warninglists/checkValue`: {value: {list name: list id}} for listed values."""
    body = call(ctx, "POST", "warninglists/checkValue", list(values))
    if body == [] or body == {}:          # PHP encodes an empty answer as []
        return {}
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            "MISP warninglists/checkValue answer is not an object; its data structure changed")
    listed = {}
    for value, hits in body.items():
        names = {}
        for hit in hits if isinstance(hits, list) else ():
            if isinstance(hit, dict) and isinstance(hit.get("name"), str) and hit["name"]:
                names[hit["name"]] = str(hit.get("id") or "")
        if names:
            listed[value] = names
    return listed


def version(ctx):
    body = call(ctx, "GET", "servers/getVersion")
    if not isinstance(body, dict) or "version" not in body:
        raise UnexpectedResponseError("MISP getVersion answer has no version")
    return body["version"]


def add_sighting(ctx, value, sighting_type, source):
    """`POST /sightings/add` by value: type 0 sighting, 1 false positive."""
    response = _send(ctx, "POST", "sightings/add",
                     {"value": value, "type": sighting_type, "source": source})
    try:
        body = response.json()
    except ValueError:
        body = None
    # MISP answers "saved": false (with a 4xx) when no attribute has the value.
    if isinstance(body, dict) and body.get("saved") is False:
        reason = body.get("message") or body.get("name") or "no reason given"
        raise RelayError(f"MISP did not add the sighting: {reason}")
    _raise_for_status(response)
    return http.json_body(response, TITLE)
