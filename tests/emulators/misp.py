"""MISP emulator: the REST endpoints the relay uses, in MISP's wire format.

Data below is this project's own, shaped like MISP 2.4/2.5 JSON exports
(ids, timestamps and threat levels as strings, booleans as JSON booleans).
Knobs: `latency`, `fail` (value or "*" → HTTP status with MISP's CakePHP
error body), `rate_limit` (restSearch calls allowed before 429s),
`options["extra_events"]` (raw Event dicts appended to every restSearch
answer, for badly shaped answers). Sightings added by `/sightings/add` are
kept until `reset()` and show in later answers (the respond round trip).

Served as MISP 2.5 does: `to_ids`, attribute and event tags, galaxies,
sightings of types 0/1/2 with org and date, `includeWarninglistHits`
(`warnings`) and `/warninglists/checkValue`, decay scores
(`includeDecayScore` + `decayingModel`: `decay_score`), creator orgs,
`published`, attribute timestamps, and the filters `to_ids`, `published`,
`attribute_timestamp` ("<N>d"), `enforceWarninglist`, plus MISP's filter
syntax inside values (leading `!` = NOT, leading/trailing `%` = LIKE).
"""
import copy
import json
import re
import time

from flask import Flask, Response, request

ENV_VAR = "API_URL"
BASE_PATH = ""
KEY = "emulator-misp-key-0123456789abcdefghijklmn"
CLAIMS = {"key": KEY}

ORG = {"id": "2", "name": "CIRCL Demo CERT", "uuid": "5c6983c8-0000-4000-8000-00000000c1c1",
       "local": False}
PARTNER = {"id": "5", "name": "Financial ISAC (demo)",
           "uuid": "5c6983c8-0000-4000-8000-0000000015ac", "local": False}

ERRORS = {
    403: "Authentication failed. Please make sure you pass the API key of an API enabled "
         "user along in the Authorization header.",
    404: "Invalid event",
    405: "You do not have permission to use this functionality.",
    429: "Rate limit exceeded.",
    500: "An Internal Error Has Occurred.",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


# name, id and entries of the enabled warninglists (MISP also matches CIDRs/suffixes)
WARNINGLISTS = {
    "List of known IPv4 public DNS resolvers": ("28", {"8.8.8.8", "1.1.1.1", "9.9.9.9"}),
    "Top 1000 websites from Tranco": ("61", {"example.com", "wikipedia.org"}),
}
DECAYING_MODELS = {"1": "NIDS Simple Decaying Model", "2": "Phishing model"}
SIGHTING_ORG = {"id": "2", "name": ORG["name"], "uuid": ORG["uuid"]}


def _tag(n, name):
    return {"id": str(100 + n), "name": name, "colour": "#004646", "exportable": True,
            "user_id": "0", "hide_tag": False, "numerical_value": None,
            "is_galaxy": name.startswith("misp-galaxy:"), "is_custom_galaxy": False,
            "local": 0}


def _attribute(attr_id, event_id, attr_type, category, value, sightings=(), comment="",
               object_id="0", to_ids=True, timestamp=1788000000, tags=(), decay=None):
    """`sightings`: (date, type[, org]); `decay`: {model id: (score, decayed)}."""
    attribute = {
        "id": str(attr_id), "type": attr_type, "category": category, "to_ids": to_ids,
        "uuid": f"5f0c0000-0000-4000-8000-{attr_id:012d}", "event_id": str(event_id),
        "distribution": "5", "timestamp": str(timestamp), "comment": comment,
        "sharing_group_id": "0", "deleted": False, "disable_correlation": False,
        "object_id": object_id, "object_relation": None, "first_seen": None,
        "last_seen": None, "value": value, "Galaxy": [], "ShadowAttribute": [],
        "Sighting": [
            {"id": str(attr_id * 10 + n), "attribute_id": str(attr_id),
             "event_id": str(event_id), "org_id": "2", "date_sighting": str(stamp),
             "uuid": f"5c760000-0000-4000-8000-{attr_id * 10 + n:012d}", "source": "",
             "type": kind, "Organisation": org}
            for n, (stamp, kind, org) in enumerate(
                (s + (SIGHTING_ORG,))[:3] for s in sightings)],
    }
    if tags:
        attribute["Tag"] = [_tag(n, name) for n, name in enumerate(tags)]
    if decay:
        attribute["_decay"] = decay       # emulator-private, served as decay_score
    return attribute


def _event(event_id, info, threat, date, timestamp, orgc, tags, attributes, objects=(),
           published=True, galaxies=()):
    return {
        "id": str(event_id), "orgc_id": orgc["id"], "org_id": "2", "date": date,
        "threat_level_id": str(threat), "info": info, "published": published,
        "uuid": f"5e9b0000-0000-4000-8000-{event_id:012d}", "attribute_count":
            str(len(attributes)), "analysis": "2", "timestamp": str(timestamp),
        "distribution": "1", "proposal_email_lock": False, "locked": False,
        "publish_timestamp": str(timestamp), "sharing_group_id": "0",
        "disable_correlation": False, "extends_uuid": "", "Org": ORG, "Orgc": orgc,
        "Attribute": attributes, "ShadowAttribute": [], "RelatedEvent": [],
        "Galaxy": [_galaxy(n, *g) for n, g in enumerate(galaxies)],
        "Object": list(objects), "EventReport": [],
        "Tag": [_tag(n, name) for n, name in enumerate(tags)],
    }


def _galaxy(n, kind, name, cluster):
    return {"id": str(10 + n), "uuid": f"c4e851fa-0000-4000-8000-{n:012d}", "name": name,
            "type": kind, "description": name, "version": "1", "icon": "map",
            "namespace": "mitre-attack" if kind.startswith("mitre") else "misp",
            "GalaxyCluster": [{
                "id": str(500 + n), "uuid": f"d752161c-0000-4000-8000-{n:012d}",
                "type": kind, "value": cluster,
                "tag_name": f'misp-galaxy:{kind}="{cluster}"', "description": "",
                "galaxy_id": str(10 + n), "source": "MITRE", "authors": ["MITRE"],
                "version": "1", "meta": {}}]}


def _events():
    phishing = _event(
        1201, "Credential phishing kit impersonating a webmail login", 1, "2026-10-02",
        1790000000, ORG, ["tlp:amber", "phishing", "misp-galaxy:mitre-attack-pattern="
                          "\"Phishing - T1566\""],
        [_attribute(12011, 1201, "domain", "Network activity", "login-verify.example.net",
                    sightings=[(1790100000, "1"), (1790200000, "0"), (1790300000, "0")]),
         _attribute(12012, 1201, "hostname", "Network activity",
                    "cdn.login-verify.example.net"),
         _attribute(12013, 1201, "url", "Network activity",
                    "http://login-verify.example.net/secure/update.php",
                    comment="landing page of the kit"),
         _attribute(12014, 1201, "ip-dst", "Network activity", "198.51.100.23"),
         _attribute(12015, 1201, "email-src", "Payload delivery",
                    "billing@login-verify.example.net")])
    loader = _event(
        1202, "Malspam loader dropping a banking trojan", 2, "2026-09-14", 1788000000,
        PARTNER, ["tlp:green", "misp-galaxy:banker=\"Qakbot\""],
        [_attribute(12021, 1202, "md5", "Payload delivery", "8b83fc5d3a6a80281269f9e337fe3fff"),
         _attribute(12022, 1202, "filename|sha1", "Payload delivery",
                    "invoice_0921.doc|42e6da9a08802b5ce5d1f754d4567665637b47bc"),
         _attribute(12023, 1202, "ip-dst|port", "Network activity", "198.51.100.23|443")],
        objects=[{
            "id": "901", "name": "file", "meta-category": "file",
            "description": "File object describing a file with meta-information",
            "template_uuid": "688c46fb-5edb-40a3-8273-1af7923e2215", "template_version": "24",
            "event_id": "1202", "uuid": "5e9b0000-0000-4000-8000-0000000f0901",
            "timestamp": "1788000000", "distribution": "5", "sharing_group_id": "0",
            "comment": "", "deleted": False, "first_seen": None, "last_seen": None,
            "ObjectReference": [],
            "Attribute": [_attribute(12024, 1202, "sha256", "Payload delivery",
                                     "323d0cf9ac1c750761f66482154dbd3144dae7336c955a4576cb4cce"
                                     "6438a6ba", object_id="901")]}])
    scanner = _event(
        1203, "Opportunistic SSH scanning sources", 3, "2026-08-01", 1785000000, ORG,
        ["tlp:white"],
        [_attribute(12031, 1203, "ip-src", "Network activity", "198.51.100.23"),
         _attribute(12032, 1203, "ip-src", "Network activity", "2001:db8:bad::23")])
    osint = _event(
        1204, "Unvetted OSINT feed import", 4, "2026-07-20", 1784000000, PARTNER,
        ["tlp:clear", "osint"],
        [_attribute(12041, 1204, "domain", "Network activity", "login-verify.example.net")])
    bench = [_event(
        5000 + n, f"Botnet C2 node {n}", 1 + n % 3, "2026-10-10", 1790500000 + n, ORG,
        ["tlp:green", "botnet"],
        [_attribute(50000 + n, 5000 + n, "ip-dst", "Network activity", bench_ip(n))])
        for n in range(200)]
    return [phishing, loader, scanner, osint] + _rule_events() + bench


def _rule_events():
    """One event per verdict rule and filter (values in 203.0.113.0/24 and
    example.org), for the tests and `make demo`."""
    stamp = 1790400000
    tagged = _event(
        1301, "Paste of C2 infrastructure (unrated)", 3, "2026-10-05", stamp, ORG,
        ["tlp:amber+strict"],
        [_attribute(13011, 1301, "domain", "Network activity", "update-check.example.org",
                    tags=['adversary:infrastructure-status="active"'], timestamp=stamp),
         _attribute(13012, 1301, "domain", "Network activity", "cdn-assets.example.org",
                    tags=['false-positive:risk="high"'], timestamp=stamp)],
        galaxies=[("mitre-attack-pattern", "Attack Pattern",
                   "Application Layer Protocol - T1071"),
                  ("threat-actor", "Threat Actor", "APT28")])
    sinkhole = _event(
        1302, "Ransomware C2 servers", 1, "2026-10-06", stamp, ORG, ["tlp:green"],
        [_attribute(13021, 1302, "ip-dst", "Network activity", "203.0.113.77",
                    sightings=[(1790410000, "0"), (1790420000, "1")], timestamp=stamp),
         _attribute(13022, 1302, "ip-dst", "Network activity", "203.0.113.50",
                    sightings=[(1790410000, "0")], timestamp=stamp),
         _attribute(13023, 1302, "ip-dst", "Network activity", "203.0.113.130",
                    sightings=[(1790410000, "0"), (1790430000, "2")], timestamp=stamp),
         _attribute(13024, 1302, "ip-dst", "Network activity", "8.8.8.8",
                    comment="resolver used by the implant", timestamp=stamp)],
        galaxies=[("ransomware", "Ransomware", "LockBit")])
    decayed = _event(
        1303, "Brute-force sources", 1, "2026-10-07", stamp, ORG, ["tlp:green"],
        [_attribute(13031, 1303, "ip-src", "Network activity", "203.0.113.88",
                    timestamp=stamp, decay={"1": (12.5, True)}),
         _attribute(13032, 1303, "ip-src", "Network activity", "203.0.113.89",
                    timestamp=stamp, decay={"1": (91.3, False), "2": (40.0, False)})])
    context = _event(
        1304, "Victim infrastructure (context, not for IDS)", 1, "2026-10-08", stamp, ORG,
        ["tlp:amber"],
        [_attribute(13041, 1304, "ip-dst", "Network activity", "203.0.113.10",
                    to_ids=False, timestamp=stamp)])
    draft = _event(
        1305, "Draft: unreviewed phishing report", 1, "2026-10-09", stamp, ORG, ["tlp:green"],
        [_attribute(13051, 1305, "domain", "Network activity", "draft-only.example.org",
                    timestamp=stamp)], published=False)
    old = _event(
        1306, "Emotet epoch 1 C2 (2019)", 1, "2019-03-01", 1551398400, ORG, ["tlp:white"],
        [_attribute(13061, 1306, "ip-dst", "Network activity", "203.0.113.120",
                    timestamp=1551398400)])
    return [tagged, sinkhole, decayed, context, draft, old]


def bench_ip(n):
    return f"100.64.{n // 250}.{n % 250 + 1}"


EVENTS = _events()


def observables(n):
    """n distinct IPs, each matching one bench event."""
    return [{"type": "ip", "value": bench_ip(i)} for i in range(n)]


def _error(status, path):
    message = ERRORS.get(status, "Error")
    body = {"name": message, "message": message, "url": path}
    return Response(json.dumps(body).replace("/", "\\/"), status=status,
                    mimetype="application/json")


def _failure(status, path):
    if status == "garbage":
        return Response("<html>MISP maintenance</html>", status=200, mimetype="text/html")
    return _error(status, path)


def _all_attributes(event):
    return event["Attribute"] + [a for o in event["Object"] for a in o["Attribute"]]


def _like(pattern):
    return re.compile("^" + ".*".join(map(re.escape, pattern.split("%"))) + "$", re.I)


def _value_matcher(values):
    """MISP's `value` filter: exact (caseless), `%` LIKE, leading `!` NOT."""
    wanted, likes, negated = set(), [], set()
    for value in values:
        if value.startswith("!"):
            negated.add(value[1:].lower())
        elif "%" in value:
            likes.append(_like(value))
        else:
            wanted.add(value.lower())

    def matches(attribute):
        parts = [attribute["value"]] + attribute["value"].split("|")
        return any(p.lower() in wanted or any(r.match(p) for r in likes) for p in parts)

    def selects(event):
        attributes = _all_attributes(event)
        if negated and not (wanted or likes):
            return not any(p.lower() in negated for a in attributes
                           for p in [a["value"]] + a["value"].split("|"))
        return any(matches(a) for a in attributes)
    return selects


def _matches(event, wanted):
    return _value_matcher(wanted)(event)


def listed(value):
    """{warninglist name: id} of the enabled lists holding `value`."""
    return {name: list_id for name, (list_id, entries) in WARNINGLISTS.items()
            if value.strip().lower() in entries}


def _served_attribute(attribute, body, added):
    attribute = dict(attribute)
    decay = attribute.pop("_decay", None)
    sightings = list(attribute["Sighting"]) + [
        dict(s, attribute_id=attribute["id"], event_id=attribute["event_id"])
        for s in added if s["value"].lower() in
        [p.lower() for p in [attribute["value"]] + attribute["value"].split("|")]]
    attribute["Sighting"] = sightings if body.get("includeSightings") else []
    if body.get("includeWarninglistHits"):
        hits = listed(attribute["value"])
        if hits:
            attribute["warnings"] = [
                {"warninglist_id": list_id, "warninglist_name": name,
                 "warninglist_category": "false_positive"} for name, list_id in hits.items()]
    if body.get("includeDecayScore") and decay:
        models = [str(m) for m in body.get("decayingModel") or decay]
        attribute["decay_score"] = [
            {"score": decay[m][0], "base_score": 80, "decayed": decay[m][1],
             "DecayingModel": {"id": m, "name": DECAYING_MODELS[m]}}
            for m in models if m in decay]
    return attribute


def _attribute_kept(attribute, body):
    if body.get("to_ids") and not attribute["to_ids"]:
        return False
    if body.get("enforceWarninglist") and listed(attribute["value"]):
        return False
    since = body.get("attribute_timestamp")
    if since:
        days = int(str(since).rstrip("d"))
        return int(attribute["timestamp"]) >= time.time() - days * 86400
    return True


def _served_event(event, body, added):
    """The event as restSearch returns it for `body`'s filters, or None."""
    if body.get("published") and not event["published"]:
        return None
    served = copy.copy(event)
    served["Attribute"] = [_served_attribute(a, body, added) for a in event["Attribute"]
                           if _attribute_kept(a, body)]
    served["Object"] = [dict(o, Attribute=[_served_attribute(a, body, added)
                                           for a in o["Attribute"] if _attribute_kept(a, body)])
                        for o in event["Object"]]
    if not _all_attributes(served):
        return None
    return served


def create_app(emulator):
    app = Flask("misp-emulator")

    def guard():
        emulator.hit(request)
        if request.headers.get("Authorization") != KEY:
            return _error(403, request.path)
        return None

    @app.get("/servers/getVersion")
    @app.get("/servers/getVersion.json")
    def get_version():
        denied = guard()
        if denied:
            return denied
        status = emulator.failure_for("getVersion")
        if status:
            return _error(status, request.path)
        return {"version": "2.5.21", "pymisp_recommended_version": "2.5.21",
                "perm_sync": False, "perm_sighting": True, "perm_galaxy_editor": False,
                "perm_analyst_data": True, "uuid": "-", "request_encoding": ["gzip"],
                "filter_sightings": True}

    @app.post("/events/restSearch")
    def rest_search():
        denied = guard()
        if denied:
            return denied
        if emulator.rate_limit is not None:
            emulator.rate_limit -= 1
            if emulator.rate_limit < 0:
                response = _error(429, request.path)
                response.headers.update({"X-Rate-Limit-Limit": "10",
                                         "X-Rate-Limit-Remaining": "0",
                                         "X-Rate-Limit-Reset": "30"})
                return response
        body = request.get_json(silent=True) or {}
        values = body.get("value", [])
        values = [values] if isinstance(values, str) else list(values)
        for value in values + ["*"]:
            status = emulator.failure_for(value)
            if status:
                return _failure(status, request.path)
        wanted = [str(v).strip() for v in values if str(v).strip()]
        selects = _value_matcher(wanted)
        added = emulator.options.get("sightings", [])
        hits = [e for e in EVENTS if not wanted or selects(e)]  # blank: everything
        hits = [e for e in (_served_event(e, body, added) for e in hits) if e]
        limit = int(body.get("limit") or len(hits) or 1)
        page = int(body.get("page") or 1)
        chosen = hits[(page - 1) * limit: page * limit]
        items = [{"Event": e} for e in chosen] + list(emulator.options.get("extra_events", []))
        response = Response(json.dumps({"response": items}) + "\n",
                            mimetype="application/json")
        response.headers["X-Result-Count"] = str(len(hits))
        response.headers["X-Response-Format"] = "json"
        return response

    @app.post("/sightings/add")
    def add_sighting():
        denied = guard()
        if denied:
            return denied
        body = request.get_json(silent=True) or {}
        value = str(body.get("value", "")).lower()
        status = emulator.failure_for(value)
        if status:
            return _error(status, request.path)
        if not any(_matches(e, {value}) for e in EVENTS):
            message = "Could not add the Sighting. Reason: No valid attributes found."
            return Response(json.dumps({"saved": False, "name": message, "message": message,
                                        "url": "/sightings/add", "errors": message}),
                            status=403, mimetype="application/json")
        added = emulator.options.setdefault("sightings", [])
        sighting = {"id": str(9000 + len(added)), "value": body.get("value"),
                    "type": str(body.get("type", "0")), "source": body.get("source", ""),
                    "org_id": "2", "date_sighting": str(int(time.time())),
                    "uuid": f"5c760000-0000-4000-8000-{9000 + len(added):012d}",
                    "Organisation": SIGHTING_ORG}
        added.append(sighting)
        return {"Sighting": sighting}

    @app.post("/warninglists/checkValue")
    def check_value():
        denied = guard()
        if denied:
            return denied
        status = emulator.failure_for("checkValue")
        if status:
            return _failure(status, request.path)
        body = request.get_json(silent=True)
        values = body if isinstance(body, list) else (body or {}).get("value", [])
        hits = {}
        for value in values:
            found = listed(str(value))
            if found:
                hits[value] = [{"id": list_id, "name": name, "matched": str(value)}
                               for name, list_id in found.items()]
        return Response(json.dumps(hits or []), mimetype="application/json")

    return app
