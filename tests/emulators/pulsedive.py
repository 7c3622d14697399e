"""Pulsedive emulator: `info.php` and `analyze.php` in Pulsedive's wire format.

Data (written for this project; timestamps "YYYY-MM-DD HH:MM:SS" relative to now):
- the demo observables of observables.json: 198.51.100.23 (high),
  2001:db8:bad::23 (medium), login-verify.example.net (critical, DNS A/AAAA),
  cdn.login-verify.example.net (Pulsedive types it "domain"; low) and
  http://login-verify.example.net/secure/update.php (high);
- synthetic observables for `observables(n)`: 198.18.0.0/15, 2001:db8:18::/48,
  `*.pulsedive.test` and `http://*.pulsedive.test/...`, risk from a hash;
- anything else, and 192.0.2.200: 404 `{"error": "Indicator not found."}`.
`info.php?iid=N` serves the indicator with that iid (iid 2 is always known,
for the health check); `get=links` serves `{"Active DNS": [...]}`.

Knobs beyond the common ones:
- `options["keys"]`: more keys accepted beside CLAIMS["key"];
- a `key` other than those: 401 `{"error": "Invalid API key."}`
  (Pulsedive documents 401 for a bad key; the body text is an assumption);
- `fail[value]` = status: 404, 408 (still processing), 429 (+ Retry-After
  from `options["retry_after"]` when set), 401, 5xx (an HTML page for
  502-504, JSON `error` otherwise);
- `options["responses"][value]` = (status, body[, headers]): serve exactly
  that; a dict/list body is sent as JSON, a str as text/html;
- `options["latency"][value]` = seconds: extra delay for that value;
- `rate_limit` = N requests per second per key (sliding one-second window):
  every answer then carries `X-Requests-Remaining-Second`, and a call over
  the limit gets 429 with Pulsedive's documented message;
- `options["day_limit"]` = N requests per key since reset: adds
  `X-Requests-Remaining-Day`, then 429 "... N requests per day ..." with
  Retry-After `options["retry_after"]` (default "3600");
- `options["scans"]`: the analyze.php forms received (appended by the app).
"""
import hashlib
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone

from flask import Flask, Response, jsonify, request

ENV_VAR = "PULSEDIVE_API_URL"
BASE_PATH = "/api"
CLAIMS = {"key": "emulator-pulsedive-key-0b1c"}

NOT_FOUND = {"error": "Indicator not found."}
RATE_MESSAGE = ("API rate limit exceeded: {n} requests per {period}. Visit "
                "pulsedive.com/api to view limits and upgrade your plan.")
PROCESSING = {"error": "Request(s) still processing.", "status": "processing",
              "note": "status field is in beta: processing | not found | done",
              "qid": "51027311"}

_SYNTHETIC_DOMAIN = ".pulsedive.test"
_SYNTHETIC_IPV6 = "2001:db8:18::"
_RISKS = ("none", "low", "medium", "high", "critical", "unknown")

# Pulsedive threats, feeds and risk factors the data below links to.
_THREATS = {
    "phish": {"tid": 4121, "name": "Credential Phishing Kit", "category": "phishing",
              "risk": "high"},
    "bot": {"tid": 377, "name": "Mirai", "category": "botnet", "risk": "critical"},
    "miner": {"tid": 108, "name": "JS Crypto Miner", "category": "abuse",
              "risk": "unknown"},
}
_FEEDS = {
    "openphish": {"fid": 41, "name": "OpenPhish Feed", "category": "phishing",
                  "organization": "OpenPhish", "pricing": "free"},
    "abuse": {"fid": 7, "name": "Abuse.ch SSLBL", "category": "malware",
              "organization": "abuse.ch", "pricing": "free"},
    "dnsbl": {"fid": 13, "name": "BBcan177 DNSBL", "category": "general",
              "organization": "BBcan177", "pricing": "free"},
}
_FACTORS = {
    "feeds": {"rfid": 60, "description": "found in threat feeds", "risk": "medium"},
    "new": {"rfid": 22, "description": "recently registered domain", "risk": "low"},
    "ports": {"rfid": 41, "description": "uses uncommon ports", "risk": "low"},
    "phish": {"rfid": 88, "description": "hosts a phishing kit", "risk": "high"},
    "top": {"rfid": 59, "description": "top 1k domain", "risk": "none"},
}


def _stamp(hours_ago):
    moment = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _indicator(iid, value, kind, risk, factors=(), threats=(), feeds=(), dns=None,
               retired=None, seen=3):
    """An info.php object as Pulsedive's legacy API sends it."""
    info = {
        "iid": iid, "type": kind, "indicator": value, "risk": risk,
        "risk_recommended": risk, "manualrisk": 0, "retired": retired,
        "stamp_added": _stamp(24 * 90), "stamp_updated": _stamp(seen),
        "stamp_seen": _stamp(seen), "stamp_probed": _stamp(seen + 1),
        "stamp_retired": None, "recent": 1 if retired is None else 0,
        "riskfactors": [dict(_FACTORS[name]) for name in factors],
        "comments": [],
        "attributes": {"port": ["80", "443"], "protocol": ["HTTP", "HTTPS"]},
        "properties": {"geo": {"country": "Netherlands", "countrycode": "NL"}},
        "threats": [dict(_THREATS[name], stamp_linked=_stamp(hours))
                    for name, hours in threats],
        "feeds": [dict(_FEEDS[name], stamp_linked=_stamp(hours)) for name, hours in feeds],
    }
    if dns:
        info["properties"]["dns"] = dns
    return info


_FIXED = {
    "198.51.100.23": lambda: _indicator(
        91001, "198.51.100.23", "ip", "high", ("feeds", "ports"),
        (("bot", 5), ("phish", 30)), (("abuse", 4), ("dnsbl", 48))),
    "2001:db8:bad::23": lambda: _indicator(
        91002, "2001:db8:bad::23", "ipv6", "medium", ("feeds",), (), (("dnsbl", 12),)),
    "login-verify.example.net": lambda: _indicator(
        91003, "login-verify.example.net", "domain", "critical",
        ("phish", "new", "feeds"), (("phish", 2),), (("openphish", 1),),
        dns={"A": ["198.51.100.23", "198.51.100.24"], "AAAA": "2001:db8:bad::23",
             "NS": ["ns1.example.net"], "MX": "mx.example.net"}),
    "cdn.login-verify.example.net": lambda: _indicator(
        91004, "cdn.login-verify.example.net", "domain", "low", ("new",), (),
        (("dnsbl", 72),), dns={"A": "198.51.100.24"}),
    "http://login-verify.example.net/secure/update.php": lambda: _indicator(
        91005, "http://login-verify.example.net/secure/update.php", "url", "high",
        ("phish",), (("phish", 2),), (("openphish", 1),)),
    "pulsedive.com": lambda: _indicator(
        2, "pulsedive.com", "domain", "none", ("top",), retired="No recent activity"),
}
_LINKS = {
    "198.51.100.23": {"Active DNS": [
        {"iid": 91003, "indicator": "login-verify.example.net", "type": "domain",
         "risk": "critical", "stamp_linked": _stamp(6), "summary": {}}]},
}


def _synthetic_kind(value):
    if value.startswith("http://") and _SYNTHETIC_DOMAIN + "/" in value:
        return "url"
    if value.endswith(_SYNTHETIC_DOMAIN):
        return "domain"
    if value.startswith(_SYNTHETIC_IPV6):
        return "ipv6"
    parts = value.split(".")
    if (len(parts) == 4 and parts[0] == "198" and parts[1] in ("18", "19")
            and all(p.isdigit() for p in parts)):
        return "ip"
    return None


def _synthetic(value, kind):
    digest = hashlib.sha256(value.encode()).digest()
    risk = _RISKS[digest[0] % len(_RISKS)]
    factors = ("feeds", "ports", "new")[: 1 + digest[1] % 3]
    threats = (("bot", 1 + digest[2] % 48),) if risk in ("high", "critical") else ()
    feeds = (("dnsbl", 1 + digest[3] % 200),) if risk != "none" else ()
    return _indicator(100000 + int.from_bytes(digest[4:7], "big"), value, kind, risk,
                      factors, threats, feeds)


def lookup(value):
    """The info.php object the emulator serves for `value`, or None."""
    if value in _FIXED:
        return _FIXED[value]()
    kind = _synthetic_kind(value)
    return _synthetic(value, kind) if kind else None


def _by_iid(iid):
    for build in _FIXED.values():
        info = build()
        if str(info["iid"]) == str(iid):
            return info
    return None


def _served(status, body, headers=None):
    if isinstance(body, (dict, list)):
        response = jsonify(body)
        response.status_code = status
    else:
        response = Response(body, status=status, mimetype="text/html")
    response.headers.update(headers or {})
    return response


def _failure(emulator, status):
    if status == 404:
        return _served(404, NOT_FOUND)
    if status == 408:
        return _served(408, PROCESSING)
    if status == 401:
        return _served(401, {"error": "Invalid API key."})
    if status == 429:
        headers = {}
        if emulator.options.get("retry_after"):
            headers["Retry-After"] = str(emulator.options["retry_after"])
        return _served(429, {"error": RATE_MESSAGE.format(n=1, period="second")}, headers)
    if status in (502, 503, 504):
        return _served(status, f"<html><body><h1>{status}</h1>Bad gateway</body></html>")
    if status >= 500:
        return _served(status, {"error": "Internal server error."})
    return _served(status, {"error": "Invalid request or data not found."})


_limit_lock = threading.Lock()


def _rate_check(emulator, key):
    """(headers, 429 response or None) for one call of `key`.

    State lives in `emulator.options`, so `reset()` forgets it.
    """
    per_second = emulator.rate_limit
    per_day = emulator.options.get("day_limit")
    headers = {}
    with _limit_lock:
        state = emulator.options.setdefault("_rate_state", {"windows": {}, "days": {}})
        if per_day is not None:
            used = state["days"].get(key, 0)
            if used >= per_day:
                message = RATE_MESSAGE.format(n=per_day, period="day")
                retry = str(emulator.options.get("retry_after", "3600"))
                return headers, _served(429, {"error": message},
                                        {"Retry-After": retry,
                                         "X-Requests-Remaining-Day": "0"})
            state["days"][key] = used + 1
            headers["X-Requests-Remaining-Day"] = str(per_day - used - 1)
        if per_second is not None:
            now = time.monotonic()
            window = state["windows"].setdefault(key, deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= per_second:
                message = RATE_MESSAGE.format(n=per_second, period="second")
                return headers, _served(429, {"error": message})
            window.append(now)
            headers["X-Requests-Remaining-Second"] = str(per_second - len(window))
    return headers, None


def create_app(emulator):
    """The emulator's Flask app."""
    app = Flask(__name__)

    def gatekeeper(value):
        """Common checks: key, latency, rate limits and `fail`; (headers, early)."""
        emulator.hit(request)
        delay = emulator.options.get("latency", {}).get(value)
        if delay:
            time.sleep(delay)
        key = request.values.get("key")
        if key is not None and key not in (CLAIMS["key"], *emulator.options.get("keys", ())):
            return {}, _served(401, {"error": "Invalid API key."})
        headers, limited = _rate_check(emulator, key)
        if limited is not None:
            return headers, limited
        status = emulator.failure_for(value)
        if status:
            failed = _failure(emulator, status)
            failed.headers.update(headers)
            return headers, failed
        canned = emulator.options.get("responses", {}).get(value)
        if canned is not None:
            status, body, *extra = canned
            return headers, _served(status, body, dict(headers, **(extra[0] if extra else {})))
        return headers, None

    @app.get("/api/info.php")
    def info():
        value = request.args.get("indicator") or request.args.get("iid") or ""
        headers, early = gatekeeper(value)
        if early is not None:
            return early
        if "iid" in request.args and "indicator" not in request.args:
            found = _by_iid(request.args["iid"])
        elif request.args.get("get") == "links":
            found = _LINKS.get(value, {}) if lookup(value) else None
        else:
            found = lookup(value)
        if found is None:
            return _served(404, NOT_FOUND, headers)
        return _served(200, found, headers)

    @app.post("/api/analyze.php")
    def analyze():
        value = request.form.get("value", "")
        headers, early = gatekeeper(value)
        if early is not None:
            return early
        if not value:
            return _served(400, {"error": "Invalid request or data not found."}, headers)
        emulator.options.setdefault("scans", []).append(request.form.to_dict())
        qid = int(hashlib.sha256(value.encode()).hexdigest()[:7], 16)
        return _served(200, {"success": "Added request to queue.", "qid": qid}, headers)

    @app.errorhandler(404)
    def not_found(error):
        return _served(404, {"error": "Invalid API endpoint."})

    @app.errorhandler(405)
    def not_allowed(error):
        return _served(405, {"error": "Method not allowed."})

    return app


def observables(n):
    """`n` distinct ip/ipv6/domain/url observables the emulator knows."""
    result = []
    for i in range(n):
        kind = ("ip", "domain", "ipv6", "url")[i % 4]
        if kind == "ip":
            value = f"198.{18 + (i >> 16) % 2}.{(i >> 8) & 255}.{i & 255}"
        elif kind == "ipv6":
            value = f"{_SYNTHETIC_IPV6}{i:x}"
        elif kind == "domain":
            value = f"host-{i}{_SYNTHETIC_DOMAIN}"
        else:
            value = f"http://host-{i}{_SYNTHETIC_DOMAIN}/login?id={i}"
        result.append({"type": kind, "value": value})
    return result
