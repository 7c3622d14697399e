"""Threatscore | Cyberprotect emulator: `GET /api/score/<value>` in the v1 wire format.

Data (written for this project, dates relative to "now"):
- the demo observables of observables.json: 198.51.100.23 (malicious),
  2001:db8:bad::23 (suspicious), login-verify.example.net (malicious,
  history listed oldest first);
- 127.0.0.100 (health probe): the pre-2021 unknown form `"scores": [[]]`;
- synthetic observables for `observables(n)`: 10.0.0.0/8, 2001:db8:5c0::/48
  and `*.threatscore.test`, scored from a hash of the value;
- anything else: 404 `{"error": {"message": "Observable not found"}}`.

Knobs beyond the common ones:
- `fail[value]` = status: 404 (wrong-URL body), 429 (+ Retry-After from
  `options["retry_after"]`, default "30"), 5xx (an HTML page for 502-504,
  Threatscore's JSON otherwise), other 4xx (JSON `error.message`);
- `options["responses"][value]` = (status, body): serve exactly that; a dict
  or list body is sent as JSON, a str as text/html;
- `options["latency"][value]` = seconds: extra delay for that value;
- `rate_limit` = N: answer 429 once more than N calls arrived since reset.
"""
import hashlib
import time
from datetime import datetime, timedelta, timezone

from flask import Flask, Response, jsonify, request

ENV_VAR = "CYBERPROTECT_API_URL"
BASE_PATH = ""
CLAIMS = {}

HEALTH_VALUE = "127.0.0.100"
ENGINES = (
    "0b7c1d6e2f4a4c39a1e8d2f36c5b7e90",
    "3e9f27a4c1d84b5e96f0a2c7d3b81e45",
    "5a1d8c3f7e2b4d69b0c4e8f1a7d2c36b",
    "7f4e2a9c6b1d4e83a5c0f9d2b8e71a04",
    "9c2b6e1f4a7d4c58b3e0d6a9f1c72e8d",
)
# value -> [(hours ago, overall score, [(engine index, engine score), ...]), ...]
_FIXED = {
    "198.51.100.23": ("ip", "NL", "Netherlands", [
        (2, 0.8125, [(0, 0.95), (1, 0.9), (2, 0.5), (3, 0.85), (4, 0.1)]),
        (30, 0.7, [(0, 0.9), (1, 0.75), (3, 0.2)]),
        (200, 0.4, [(0, 0.45), (1, 0.3)]),
    ]),
    "2001:db8:bad::23": ("ipv6", "DE", "Germany", [
        (5, 0.4125, [(1, 0.5), (2, 0.45), (4, 0.2), (3, None)]),
        (70, 0.2, [(1, 0.2), (2, 0.1)]),
    ]),
    # Listed oldest first: the relay must pick the newest by date.
    "login-verify.example.net": ("domain", "US", "United States", [
        (400, 0.3, [(0, 0.3), (2, 0.25)]),
        (50, 0.6, [(0, 0.7), (2, 0.55), (4, 0.4)]),
        (1, 0.9333, [(0, 1.0), (1, 0.95), (2, 0.85), (3, 0.9), (4, 0.45)]),
    ]),
}
_SYNTHETIC_DOMAIN = ".threatscore.test"
_SYNTHETIC_IPV6 = "2001:db8:5c0::"


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _level(score):
    if score is None:
        return None
    return "safe" if score <= 0.25 else "suspicious" if score <= 0.5 else "malicious"


def _score_entry(now, hours_ago, score, engines):
    date = _iso(now - timedelta(hours=hours_ago))
    return {
        "date": date,
        "score": score,
        "confidence": None,
        "level": _level(score),
        "details": [{"date": date, "engineId": ENGINES[index], "engineConfidence": None,
                     "level": _level(engine_score), "score": engine_score}
                    for index, engine_score in engines],
    }


def _document(value, kind, country, history):
    now = datetime.now(timezone.utc)
    scores = [_score_entry(now, *item) for item in history]
    dates = sorted(entry["date"] for entry in scores)
    return {
        "geo": {"country": {"code": country[0], "name": country[1]}},
        "signature": hashlib.sha256(value.encode()).hexdigest(),
        "data": value,
        "types": [kind],
        "version": int(hashlib.sha256(value.encode()).hexdigest()[:6], 16),
        "firstSeen": dates[0][:10],
        "lastSeen": dates[-1],
        "sources": len(scores),
        "scores": scores,
    }


def _synthetic_kind(value):
    if value.endswith(_SYNTHETIC_DOMAIN):
        return "domain"
    if value.startswith(_SYNTHETIC_IPV6):
        return "ipv6"
    parts = value.split(".")
    if len(parts) == 4 and parts[0] == "10" and all(p.isdigit() for p in parts):
        return "ip"
    return None


def _synthetic(value, kind):
    digest = hashlib.sha256(value.encode()).digest()
    overall = round(digest[0] / 255, 4)
    engines = [(i, round(digest[i + 1] / 255, 4)) for i in range(2 + digest[6] % 4)]
    history = [(1 + digest[7] % 12, overall, engines),
               (48, round(digest[8] / 255, 4), engines[:2])]
    return _document(value, kind, ("FR", "France"), history)


def lookup(value):
    """The score document the emulator serves for `value`, or None if unknown."""
    if value in _FIXED:
        kind, code, country, history = _FIXED[value]
        return _document(value, kind, (code, country), history)
    if value == HEALTH_VALUE:
        return {"scores": [[]], "types": ["Unknown"],
                "signature": hashlib.sha256(value.encode()).hexdigest()[:49]}
    kind = _synthetic_kind(value)
    return _synthetic(value, kind) if kind else None


def _error(status, kind, message, headers=None):
    body = {"error": {"type": kind, "code": str(status), "message": message}}
    return jsonify(body), status, headers or {}


def _failure(emulator, status):
    if status == 404:
        return _error(404, "Client Error", "Not Found")
    if status == 429:
        return _error(429, "Client Error", "Too Many Requests",
                      {"Retry-After": emulator.options.get("retry_after", "30")})
    if status in (502, 503, 504):
        return Response(f"<html><body><h1>{status}</h1>Gateway error</body></html>",
                        status=status, mimetype="text/html")
    if status >= 500:
        return _error(status, "Server Error", "Internal Error")
    return _error(status, "Client Error", f"Request refused ({status})")


def _served(status, body):
    if isinstance(body, (dict, list)):
        return jsonify(body), status
    return Response(body, status=status, mimetype="text/html")


def create_app(emulator):
    """The emulator's Flask app."""
    app = Flask(__name__)

    @app.get("/api/score/<path:value>")
    def score(value):
        emulator.hit(request)
        delay = emulator.options.get("latency", {}).get(value)
        if delay:
            time.sleep(delay)
        if emulator.rate_limit is not None and emulator.calls > emulator.rate_limit:
            return _failure(emulator, 429)
        status = emulator.failure_for(value)
        if status:
            return _failure(emulator, status)
        canned = emulator.options.get("responses", {}).get(value)
        if canned is not None:
            return _served(*canned)
        document = lookup(value)
        if document is None:
            return jsonify({"error": {"message": "Observable not found"}}), 404
        return jsonify(document)

    @app.errorhandler(404)
    def not_found(error):
        return _error(404, "Client Error", "Not Found")

    return app


def observables(n):
    """`n` distinct ip/ipv6/domain observables the emulator scores."""
    result = []
    for i in range(n):
        kind = ("ip", "ipv6", "domain")[i % 3]
        if kind == "ip":
            value = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        elif kind == "ipv6":
            value = f"{_SYNTHETIC_IPV6}{i:x}"
        else:
            value = f"host-{i}{_SYNTHETIC_DOMAIN}"
        result.append({"type": kind, "value": value})
    return result
