"""AlienVault OTX emulator: `general` indicator sections, paginated pulse
indicator lists and `user/me`, in OTX's wire format.

Its data is written here (not copied from recorded samples): three pulses
about the demo campaign in ../observables.json, a few benign and one-pulse
indicators, and generated `198.18.0.0/15` addresses for the bench.

Knobs on the `Emulator`: `fail` maps an indicator value, a pulse id,
"user/me" or "*" to an HTTP status, or to "not json" for a 200 HTML body; `rate_limit`
= N answers 429 after N calls; `options["delay"]` maps a value or pulse id
to extra seconds before answering; `options["body"]` maps a value or pulse id to
a JSON body answered with HTTP 200 instead of the emulator's data (bad shapes);
`options["keys"]` = more API keys accepted beside KEY.
"""
import ipaddress
import json
import time
from functools import lru_cache, partial
from urllib.parse import unquote, urlencode

from flask import Flask, Response, request

ENV_VAR = "OTX_API_URL"
BASE_PATH = ""
KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
CLAIMS = {"key": KEY}

SECTIONS = {"IPv4", "IPv6", "domain", "hostname", "url", "file", "cve"}
HASH_TYPES = {32: ("md5", "FileHash-MD5"), 40: ("sha1", "FileHash-SHA1"),
              64: ("sha256", "FileHash-SHA256")}

DEMO_MD5 = "8b83fc5d3a6a80281269f9e337fe3fff"
DEMO_SHA1 = "42e6da9a08802b5ce5d1f754d4567665637b47bc"
DEMO_SHA256 = "323d0cf9ac1c750761f66482154dbd3144dae7336c955a4576cb4cce6438a6ba"
DEMO_URL = "http://login-verify.example.net/secure/update.php"

KIT = "66a0c1f0e2d3c4b5a6978801"
DROPPER = "66a0c1f0e2d3c4b5a6978802"
HONEYPOT = "66a0c1f0e2d3c4b5a6978803"
BENIGN = "66a0c1f0e2d3c4b5a6978804"
BENCH_CAMPAIGN = "beefbeefbeefbeef00000000"
BENCH_SIZE = 5000

# pulse id -> pulse fields (wire format) and its rows:
# (indicator, OTX type, created, expiration, title)
PULSES = {
    KIT: {
        "name": "Login-verify credential phishing kit",
        "description": "Phishing pages imitating a bank login, served from "
                       "login-verify.example.net, with a dropper behind the 'update' link.",
        "author": "relay-demo-analyst", "TLP": "green",
        "tags": ["phishing", "credential theft", "login-verify", " "],
        "references": ["https://blog.example.org/2024/login-verify-kit",
                       "seen in customer mail gateway logs"],
        "created": "2024-05-20T08:15:02.412000", "modified": "2024-06-02T17:40:11.001000",
        "rows": [
            ("198.51.100.23", "IPv4", "2024-05-20T08:15:05", None, ""),
            ("2001:db8:bad::23", "IPv6", "2024-05-20T08:15:05", None, ""),
            ("login-verify.example.net", "domain", "2024-05-20T08:15:05", None,
             "Kit landing domain"),
            ("cdn.login-verify.example.net", "hostname", "2024-05-21T09:00:00", None, ""),
            (DEMO_URL, "URL", "2024-05-22T11:30:00", None, ""),
            (DEMO_MD5, "FileHash-MD5", "2024-05-23T12:00:00", None, ""),
            (DEMO_SHA1, "FileHash-SHA1", "2024-05-23T12:00:00", None, ""),
            (DEMO_SHA256, "FileHash-SHA256", "2024-05-23T12:00:00", None, ""),
            ("billing@login-verify.example.net", "email", "2024-05-20T08:15:05", None, ""),
        ],
    },
    DROPPER: {
        "name": "Dropper infrastructure, May 2024",
        "description": "Payload hosts and hashes of a loader delivered by phishing kits.",
        "author": "threat-hunter-42", "TLP": "white", "tags": ["dropper", "malware"],
        "references": [], "created": "2024-05-25T21:03:44.100000",
        "modified": "2024-05-26T06:12:00.000000",
        "rows": [
            ("198.51.100.23", "IPv4", "2024-05-25T21:03:50", "2024-08-25T21:03:50", ""),
            ("login-verify.example.net", "domain", "2024-05-25T21:03:50", None, ""),
            (DEMO_URL, "URL", "2024-05-25T21:03:50", None, "Payload URL"),
            (DEMO_MD5, "FileHash-MD5", "2024-05-25T21:03:50", None, ""),
            (DEMO_SHA1, "FileHash-SHA1", "2024-05-25T21:03:50", None, ""),
            (DEMO_SHA256, "FileHash-SHA256", "2024-05-25T21:03:50", None, ""),
        ],
    },
    HONEYPOT: {
        "name": "SSH/telnet honeypot logins 2024-06-01",
        "description": "Addresses that tried to log in to honeypots.",
        "author": "honeypot-bot", "TLP": "amber", "tags": ["ssh", "bruteforce", "honeypot"],
        "references": [], "created": "2024-06-01T22:18:45.249000",
        "modified": "2024-06-02T03:00:00.000000",
        # The demo addresses sit on later pages for small page sizes.
        "rows": [(f"203.0.113.{n}", "IPv4", f"2024-06-01T22:{n % 60:02d}:00", None, "")
                 for n in range(100, 125)] + [
            ("198.51.100.23", "IPv4", "2024-06-01T20:00:00", None, ""),
            ("2001:db8:bad::23", "IPv6", "2024-06-01T19:00:00", None, ""),
        ],
    },
    BENIGN: {
        "name": "Domains seen in newsletter links",
        "description": "", "author": "newsletter-watch", "TLP": "white", "tags": [],
        "references": [], "created": "2023-11-02T10:00:00", "modified": "2023-11-02T10:00:00",
        "rows": [("benign.example.org", "domain", "2023-11-02T10:00:00", None, "")],
    },
}

# value -> validation entries and false-positive reports of `general`.
VALIDATIONS = {
    "203.0.113.53": [{"source": "false_positive", "message": "Known False Positive",
                      "name": "Known False Positive"},
                     {"source": "whitelist", "message": "contained in whitelisted prefix",
                      "name": "Whitelisted IP"}],
    "benign.example.org": [{"source": "whitelist", "message": "Whitelisted domain",
                            "name": "Whitelisted domain"},
                           {"source": "majestic", "message": "Whitelisted by Majestic",
                            "name": "Majestic top domain"}],
}
FALSE_POSITIVES = {
    "203.0.113.53": [{"assessment": "accepted", "assessment_date": "2024-01-10T12:00:00",
                      "report_date": "2024-01-02T09:30:00"}],
}


def bench_value(index):
    return f"198.18.{index // 250}.{index % 250 + 1}"


def _bench_index(value):
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return None
    offset = int(address) - int(ipaddress.IPv4Address("198.18.0.0"))
    third, fourth = divmod(offset, 256)
    if not 0 <= third < BENCH_SIZE // 250 or not 1 <= fourth <= 250:
        return None
    return third * 250 + fourth - 1


def _cluster_id(index):
    return f"beefbeefbeefbeef{index // 10 + 1:08x}"


@lru_cache(maxsize=None)
def _bench_pulse(pulse_id):
    if pulse_id == BENCH_CAMPAIGN:
        members = range(BENCH_SIZE)
        name = "Bench scanning campaign"
    elif pulse_id.startswith("beefbeefbeefbeef"):
        try:
            cluster = int(pulse_id[16:], 16) - 1
        except ValueError:
            return None
        if not 0 <= cluster < BENCH_SIZE // 10:
            return None
        members = range(cluster * 10, cluster * 10 + 10)
        name = f"Bench cluster {cluster}"
    else:
        return None
    return {"name": name, "description": "Generated for the relay's benchmark.",
            "author": "bench", "TLP": "white", "tags": ["bench"], "references": [],
            "created": "2024-03-01T00:00:00", "modified": "2024-03-02T00:00:00",
            "rows": [(bench_value(i), "IPv4", f"2024-03-01T00:{i // 60 % 60:02d}:{i % 60:02d}",
                      None, "") for i in members]}


def _pulse_data(pulse_id):
    return PULSES.get(pulse_id) or _bench_pulse(pulse_id)


def _same(left, right):
    try:
        return ipaddress.ip_address(left) == ipaddress.ip_address(right)
    except ValueError:
        return left.lower() == right.lower()


def _pulses_holding(value):
    index = _bench_index(value)
    if index is not None:
        return [BENCH_CAMPAIGN, _cluster_id(index)]
    return [pid for pid, data in PULSES.items()
            if any(_same(row[0], value) for row in data["rows"])]


def _wire_pulse(pulse_id, related_type=None):
    return dict(_pulse_summary(pulse_id), related_indicator_type=related_type)


@lru_cache(maxsize=None)
def _sorted_rows(pulse_id, newest_first):
    return sorted(_pulse_data(pulse_id)["rows"], key=lambda row: row[2], reverse=newest_first)


@lru_cache(maxsize=None)
def _pulse_summary(pulse_id):
    data = _pulse_data(pulse_id)
    counts = {}
    for row in data["rows"]:
        counts[row[1]] = counts.get(row[1], 0) + 1
    return {
        "id": pulse_id, "name": data["name"], "description": data["description"],
        "author": {"username": data["author"], "id": "4242", "avatar_url": "",
                   "is_subscribed": False, "is_following": False},
        "TLP": data["TLP"], "tags": data["tags"], "references": data["references"],
        "created": data["created"], "modified": data["modified"],
        "indicator_count": len(data["rows"]), "indicator_type_counts": counts,
        "is_modified": data["created"] != data["modified"],
        "targeted_countries": [], "industries": [], "malware_families": [],
        "attack_ids": [], "adversary": "", "public": 1, "pulse_source": "api",
        "related_indicator_is_active": 1,
        "subscriber_count": 12, "upvotes_count": 0, "downvotes_count": 0,
        "votes_count": 0, "locked": False, "cloned_from": None, "groups": [],
    }


def _kind(section, value):
    """(type, type_title) of `general`, or None for a malformed value (OTX: 400)."""
    if section in ("IPv4", "IPv6"):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return None
        if (address.version == 4) != (section == "IPv4"):
            return None
        return section, section
    if section == "file":
        kind = HASH_TYPES.get(len(value))
        if kind is None or any(c not in "0123456789abcdefABCDEF" for c in value):
            return None
        return kind
    return section, {"domain": "Domain", "hostname": "Hostname", "url": "URL",
                     "cve": "CVE"}[section]


def _general(section, value):
    kind = _kind(section, value)
    if kind is None:
        return 400, {"detail": f"Invalid {section} indicator"}
    pulse_ids = _pulses_holding(value)
    base = {}
    if pulse_ids or value in VALIDATIONS:
        base = {"id": abs(hash(value)) % 10 ** 9, "indicator": value, "type": kind[1],
                "title": "", "description": "", "content": "", "access_type": "public",
                "access_reason": ""}
    body = {
        "indicator": value, "type": kind[0], "type_title": kind[1],
        "sections": ["general"], "base_indicator": base, "reputation": 0,
        "validation": VALIDATIONS.get(value, []),
        "false_positive": FALSE_POSITIVES.get(value, []),
        "pulse_info": {
            "count": len(pulse_ids),
            "pulses": [_wire_pulse(pid, kind[1]) for pid in pulse_ids],
            "references": [], "related": {"alienvault": {"adversary": [],
                                                         "malware_families": [],
                                                         "industries": []}},
        },
    }
    if section in ("IPv4", "IPv6"):
        body.update({"asn": "AS64500 Example Net", "country_code": "ZZ",
                     "country_name": "Unknown", "latitude": 0.0, "longitude": 0.0})
    return 200, body


def _indicator_page(pulse_id, args, root):
    data = _pulse_data(pulse_id)
    if data is None:
        return 404, {"detail": "Not found."}
    try:
        page = max(int(args.get("page", 1)), 1)
        limit = max(min(int(args.get("limit", 10)), 10000), 1)
    except ValueError:
        return 400, {"detail": "Invalid page or limit."}
    rows = _sorted_rows(pulse_id, args.get("sort") == "-created")
    chunk = rows[(page - 1) * limit: page * limit]
    results = [{
        "id": 900000 + number, "indicator": value, "type": kind, "created": created,
        "content": "", "title": title, "description": "", "expiration": expiration,
        "is_active": 1, "role": None, "pulse_key": pulse_id,
        "slug": {"IPv4": "ip", "IPv6": "ip", "URL": "url"}.get(
            kind, "file" if kind.startswith("FileHash") else kind),
        "false_positive": {"assessment": None, "assessment_date": None, "report_date": None},
    } for number, (value, kind, created, expiration, title)
        in enumerate(chunk, start=(page - 1) * limit)]

    def link(number):
        query = urlencode({"sort": args.get("sort", ""), "limit": limit, "page": number})
        return f"{root}/api/v1/pulses/{pulse_id}/indicators?{query}"

    return 200, {"count": len(rows), "results": results,
                 "next": link(page + 1) if page * limit < len(rows) else None,
                 "previous": link(page - 1) if page > 1 else None}


def _user_me():
    return 200, {"username": "relay-emulator", "member_since": "2024-01-01",
                 "pulse_count": 0, "follower_count": 0}


def create_app(emulator):
    app = Flask(__name__)
    app.url_map.merge_slashes = False

    def answer(status, body):
        return Response(json.dumps(body), status=status, mimetype="application/json")

    @app.route("/api/v1/<path:rest>", methods=["GET", "POST"])
    def api(rest):
        emulator.hit(request)
        if emulator.rate_limit is not None and emulator.calls > emulator.rate_limit:
            response = answer(429, {"detail": "Request was throttled."})
            response.headers["Retry-After"] = "1"
            return response
        if request.headers.get("X-OTX-API-KEY") not in (KEY, *emulator.options.get("keys", ())):
            return answer(403, {"detail": "Authentication credentials were not provided."})
        # The raw path, as the relay encoded it: a value is exactly one segment.
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        parts = raw.split("?", 1)[0].split("/")[3:]
        if parts == ["user", "me"]:
            subject, handler = "user/me", partial(_user_me)
        elif len(parts) == 4 and parts[0] == "indicators" and parts[3] == "general":
            if parts[1] not in SECTIONS:
                return answer(404, {"detail": "Not found."})
            subject = unquote(parts[2])
            handler = partial(_general, parts[1], subject)
        elif len(parts) == 3 and parts[0] == "pulses" and parts[2] == "indicators":
            subject = unquote(parts[1])
            handler = partial(_indicator_page, subject, request.args, emulator.root)
        else:
            return answer(404, {"detail": "Not found."})
        delay = emulator.options.get("delay", {}).get(subject)
        if delay:
            time.sleep(delay)
        failure = emulator.failure_for(subject)
        if failure == "not json":
            return Response("<html><body>Bad gateway</body></html>", status=200,
                            mimetype="text/html")
        if failure:
            return answer(int(failure), {"detail": f"Emulated HTTP {failure}"})
        if subject in emulator.options.get("body", {}):
            return answer(200, emulator.options["body"][subject])
        return answer(*handler())

    return app


def observables(n):
    """n distinct bench addresses, each in two pulses (one shared by all)."""
    if n > BENCH_SIZE:
        raise ValueError(f"the OTX emulator knows {BENCH_SIZE} bench addresses")
    return [{"type": "ip", "value": bench_value(i)} for i in range(n)]
