"""MISP emulator: the REST endpoints the relay uses, in MISP's wire format.

Data below is this project's own, shaped like MISP 2.4/2.5 JSON exports
(ids, timestamps and threat levels as strings, booleans as JSON booleans).
Knobs: `latency`, `fail` (value or "*" → HTTP status with MISP's CakePHP
error body), `rate_limit` (restSearch calls allowed before 429s).
"""
import json

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


def _attribute(attr_id, event_id, attr_type, category, value, sightings=(), comment="",
               object_id="0"):
    return {
        "id": str(attr_id), "type": attr_type, "category": category, "to_ids": True,
        "uuid": f"5f0c0000-0000-4000-8000-{attr_id:012d}", "event_id": str(event_id),
        "distribution": "5", "timestamp": "1700000000", "comment": comment,
        "sharing_group_id": "0", "deleted": False, "disable_correlation": False,
        "object_id": object_id, "object_relation": None, "first_seen": None,
        "last_seen": None, "value": value, "Galaxy": [], "ShadowAttribute": [],
        "Sighting": [
            {"id": str(attr_id * 10 + n), "attribute_id": str(attr_id),
             "event_id": str(event_id), "org_id": "2", "date_sighting": str(stamp),
             "uuid": f"5c760000-0000-4000-8000-{attr_id * 10 + n:012d}", "source": "",
             "type": kind, "Organisation": {"id": "2", "name": ORG["name"],
                                            "uuid": ORG["uuid"]}}
            for n, (stamp, kind) in enumerate(sightings)],
    }


def _event(event_id, info, threat, date, timestamp, orgc, tags, attributes, objects=()):
    return {
        "id": str(event_id), "orgc_id": orgc["id"], "org_id": "2", "date": date,
        "threat_level_id": str(threat), "info": info, "published": True,
        "uuid": f"5e9b0000-0000-4000-8000-{event_id:012d}", "attribute_count":
            str(len(attributes)), "analysis": "2", "timestamp": str(timestamp),
        "distribution": "1", "proposal_email_lock": False, "locked": False,
        "publish_timestamp": str(timestamp), "sharing_group_id": "0",
        "disable_correlation": False, "extends_uuid": "", "Org": ORG, "Orgc": orgc,
        "Attribute": attributes, "ShadowAttribute": [], "RelatedEvent": [], "Galaxy": [],
        "Object": list(objects), "EventReport": [],
        "Tag": [{"id": str(100 + n), "name": name, "colour": "#004646", "exportable": True,
                 "user_id": "0", "hide_tag": False, "numerical_value": None,
                 "is_galaxy": name.startswith("misp-galaxy:"), "is_custom_galaxy": False,
                 "local": 0} for n, name in enumerate(tags)],
    }


def _events():
    phishing = _event(
        1201, "Credential phishing kit impersonating a webmail login", 1, "2026-10-02",
        1790000000, ORG, ["tlp:amber", "phishing", "misp-galaxy:mitre-attack-pattern="
                          "\"Phishing - T1566\""],
        [_attribute(12011, 1201, "domain", "Network activity", "login-verify.example.net",
                    sightings=[(1790100000, "0"), (1790200000, "0"), (1790300000, "1")]),
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
    return [phishing, loader, scanner, osint] + bench


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


def _matches(event, wanted):
    for attribute in event["Attribute"] + [a for o in event["Object"] for a in o["Attribute"]]:
        parts = [attribute["value"]] + attribute["value"].split("|")
        if any(part.lower() in wanted for part in parts):
            return True
    return False


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
            if status == "garbage":
                return Response("<html>MISP maintenance</html>", status=200,
                                mimetype="text/html")
            if status:
                return _error(status, request.path)
        wanted = {str(v).strip().lower() for v in values if str(v).strip()}
        if not wanted:  # MISP answers everything for a blank value
            hits = list(EVENTS)
        else:
            hits = [e for e in EVENTS if _matches(e, wanted)]
        limit = int(body.get("limit") or len(hits) or 1)
        page = int(body.get("page") or 1)
        chosen = hits[(page - 1) * limit: page * limit]
        if not body.get("includeSightings"):
            chosen = [dict(e, Attribute=[dict(a, Sighting=[]) for a in e["Attribute"]])
                      for e in chosen]
        response = Response(json.dumps({"response": [{"Event": e} for e in chosen]}) + "\n",
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
        return {"Sighting": {"id": "999", "value": body.get("value"),
                             "type": str(body.get("type", "0")),
                             "source": body.get("source", ""), "date_sighting": "1790000000"}}

    return app
