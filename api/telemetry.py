"""Structured request logs and CloudWatch metrics, hooked once on the Flask app.

Per request: one JSON log line at INFO (request id, provider, route,
observables in/supported, upstream calls, time and cache hits from
`ctx.stats`, entities out, errors by code, duration, outcome), one WARNING
line per upstream failure, and a CloudWatch Embedded Metric Format (EMF)
document on stdout (namespace TrIntelRelay, dimensions provider and route).

Routes tap in with `note(...)`; nothing here reads a token, a key, a header
other than X-Request-Id, or a query string. Observable values are logged only
with RELAY_LOG_OBSERVABLES=true.

Why not AWS Lambda Powertools' Logger and Metrics: they fit the job, but
importing them costs more than the relay's whole cold-start budget (`import
app` <= `import flask`) and adds jmespath and typing_extensions to the zip,
while the two documents we need take a few dozen lines of json.dumps (see the
README, "Logs and metrics", for the figures).
"""
import json
import logging
import os
import re
import sys
import threading
import time
from collections import Counter

from flask import g, request

from api.settings import Settings

NAMESPACE = "TrIntelRelay"
DIMENSIONS = ("provider", "route")
# (metric, unit) of the per-request EMF document, in this order.
METRICS = (("Requests", "Count"), ("Errors", "Count"), ("UpstreamCalls", "Count"),
           ("UpstreamLatency", "Milliseconds"), ("Duration", "Milliseconds"),
           ("CacheHits", "Count"))
# EMF takes at most 100 values per metric.
MAX_EMF_VALUES = 100
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

log = logging.getLogger("api.requests")


class _StdoutHandler(logging.StreamHandler):
    """Plain lines on the current sys.stdout (CloudWatch Logs on Lambda)."""

    def __init__(self):
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


_write_lock = threading.Lock()


def _configure_logger():
    """The relay's own handler and level, under Zappa's root logger: Zappa's
    `log_level` stays WARNING (it logs raw events below that) while request
    lines go out at RELAY_LOG_LEVEL."""
    if not any(isinstance(h, _StdoutHandler) for h in log.handlers):
        log.addHandler(_StdoutHandler())
    log.propagate = False
    log.setLevel(logging.DEBUG)  # RELAY_LOG_LEVEL is applied per request


def _level(settings):
    name = (settings.get_str("RELAY_LOG_LEVEL", "INFO") or "INFO").upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def install(app):
    """Hook the request log and metrics on `app` (one place for every route)."""
    _configure_logger()
    app.before_request(_start)
    app.after_request(_finish)


def note(**fields):
    """Record facts about the current request for its log line: ctx,
    observables, supported, data, errors. A no-op outside a request."""
    state = g.get("telemetry")
    if state is not None:
        state.update(fields)


def _start():
    g.telemetry = {"started": time.perf_counter()}


def request_id(environ, headers):
    """API Gateway's request id, else a sane X-Request-Id, else a new one."""
    event = environ.get("lambda.event")
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and context.get("requestId"):
            return str(context["requestId"])
    given = headers.get("X-Request-Id", "")
    if _REQUEST_ID.match(given):
        return given
    return os.urandom(16).hex()  # not uuid: its import costs 4 ms of cold start


def route_name(rule):
    """The contract route of a URL rule, without the provider prefix."""
    if rule is None:
        return "unmatched"
    return rule.rule.rsplit(">", 1)[-1].strip("/") or "/"


def entity_counts(data):
    """{plural type: count} of a bundle, {"items": n} of a list answer."""
    if isinstance(data, list):
        return {"items": len(data)}
    if isinstance(data, dict):
        return {key: block["count"] for key, block in data.items()
                if isinstance(block, dict) and isinstance(block.get("count"), int)}
    return {}


def _answer_of(response, state):
    """(data, error codes) noted by the route, else read from a small body."""
    if "data" in state or "errors" in state:
        return state.get("data"), [e.code for e in state.get("errors") or ()]
    body = None
    if response.is_json and (response.content_length or 0) <= 65536:
        body = response.get_json(silent=True)
    if not isinstance(body, dict):
        return None, ([] if response.status_code < 400 else [f"http {response.status_code}"])
    errors = body.get("errors")
    codes = [e.get("code", "unknown") for e in errors if isinstance(e, dict)] \
        if isinstance(errors, list) else []
    return body.get("data"), codes


def outcome(status, data, codes):
    if status >= 400 or (codes and not data):
        return "error"
    return "partial" if codes else "ok"


def _finish(response):
    state = g.pop("telemetry", None)
    if state is None:
        return response
    try:
        _report(response, state)
    except Exception:  # never let reporting break an answer
        log.warning(json.dumps({"level": "WARNING", "message": "telemetry failed"}))
    return response


def _report(response, state):
    settings = Settings(os.environ)  # a live view: no copy per request
    level = _level(settings)
    metrics = settings.get_bool("RELAY_METRICS", True)
    if level > logging.WARNING and not metrics:
        return
    duration_ms = (time.perf_counter() - state["started"]) * 1000
    ctx = state.get("ctx")
    stats = ctx.stats if ctx is not None else None
    provider = (request.view_args or {}).get("provider") or settings.default_provider
    route = route_name(request.url_rule)
    rid = request_id(request.environ, request.headers)
    data, codes = _answer_of(response, state)
    errors = dict(Counter(codes))
    upstream_ms = stats.upstream_seconds * 1000 if stats else 0.0
    if level <= logging.INFO:
        line = {"level": "INFO", "message": "request", "request_id": rid,
                "provider": provider, "route": route, "status": response.status_code,
                "outcome": outcome(response.status_code, data, codes),
                "duration_ms": round(duration_ms, 1)}
        observables = state.get("observables")
        if observables is not None:
            line["observables_in"] = len(observables)
            line["observables_supported"] = len(state.get("supported") or ())
            if settings.get_bool("RELAY_LOG_OBSERVABLES", False):
                line["observables"] = [{"type": o["type"], "value": o["value"]}
                                       for o in observables]
        if stats is not None:
            line.update(upstream_calls=stats.upstream_calls,
                        upstream_ms=round(upstream_ms, 1), cache_hits=stats.cache_hits)
        line["entities"] = entity_counts(data)
        line["errors"] = errors
        log.info(json.dumps(line))
    if stats is not None and level <= logging.WARNING:
        for failure in stats.failures:
            log.warning(json.dumps({
                "level": "WARNING", "message": "upstream failure", "request_id": rid,
                "provider": failure.provider, "status": failure.status,
                "time_ms": round(failure.seconds * 1000, 1), "code": failure.code}))
    if metrics:
        values = {"Requests": 1, "Errors": 1 if codes else 0,
                  "UpstreamCalls": stats.upstream_calls if stats else 0,
                  "Duration": round(duration_ms, 3),
                  "CacheHits": stats.cache_hits if stats else 0}
        latencies = [round(s * 1000, 3) for s in stats.call_seconds[:MAX_EMF_VALUES]] \
            if stats else []
        if latencies:
            values["UpstreamLatency"] = latencies
        docs = [emf({"provider": provider, "route": route}, values)]
        docs += [emf({"provider": provider, "route": route, "code": code}, {"Errors": 1})
                 for code in errors]
        _write("".join(json.dumps(doc) + "\n" for doc in docs))


def emf(dimensions, values, timestamp=None):
    """One EMF document: `values` as metrics under `dimensions`."""
    units = dict(METRICS)
    return {
        "_aws": {
            "Timestamp": int((time.time() if timestamp is None else timestamp) * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
            }],
        },
        **dimensions, **values,
    }


def _write(text):
    with _write_lock:
        sys.stdout.write(text)
        sys.stdout.flush()
