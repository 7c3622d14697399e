"""`make demo`, MISP part: one verdict changed by each rule and filter of the
MISP module (README "MISP verdicts"), with the reason the relay gives.

Each row observes one value over HTTP twice: with the module settings given
as JWT claims before and after (or a respond action in between), printing
the verdict and the reason of the judgement it rests on.
"""
import requests

from api.tools import cli

ACTIVE = 'adversary:infrastructure-status="active"'
MD5 = "8b83fc5d3a6a80281269f9e337fe3fff"
# (rule, type, value, claims before, claims after, respond action in between, change shown)
ROWS = [
    ("1. tags", "domain", "update-check.example.org", {}, {"MISP_MALICIOUS_TAGS": ACTIVE},
     None, f"MISP_MALICIOUS_TAGS={ACTIVE}"),
    ("2. false-positive sighting", "ip", "203.0.113.50", {}, {},
     "misp-report-false-positive", "respond: Report false positive in MISP"),
    ("3. warninglists", "ip", "8.8.8.8", {"MISP_WARNINGLISTS": "off"}, {}, None,
     "MISP_WARNINGLISTS=off -> mark (default)"),
    ("4. decay", "ip", "203.0.113.88", {}, {"MISP_DECAYING_MODEL": 1}, None,
     "MISP_DECAYING_MODEL=1"),
    ("5. threat level", "ip", "198.51.100.23", {"MISP_TRUSTED_ORGS": "nobody"}, {}, None,
     "MISP_TRUSTED_ORGS=nobody -> all orgs"),
    ("filter: IDS only", "ip", "203.0.113.10", {}, {"MISP_IDS_ONLY": True}, None,
     "MISP_IDS_ONLY=true"),
    ("filter: published only", "domain", "draft-only.example.org", {},
     {"MISP_PUBLISHED_ONLY": True}, None, "MISP_PUBLISHED_ONLY=true"),
    ("filter: look-back", "ip", "203.0.113.120", {}, {"MISP_LOOKBACK_DAYS": 365}, None,
     "MISP_LOOKBACK_DAYS=365"),
    ("filter: excluded orgs", "md5", MD5, {}, {"MISP_EXCLUDED_ORGS": "Financial ISAC (demo)"},
     None, "MISP_EXCLUDED_ORGS=Financial ISAC (demo)"),
    ("filter: trusted orgs", "md5", MD5, {}, {"MISP_TRUSTED_ORGS": "CIRCL Demo CERT"}, None,
     "MISP_TRUSTED_ORGS=CIRCL Demo CERT"),
]


def _verdict(relay, token, observable):
    body = requests.post(f"{relay}/misp/observe/observables", json=[observable],
                         headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    data = body.get("data", {})
    verdicts = data.get("verdicts", {}).get("docs", [])
    if not verdicts:
        return f"none ({data.get('sightings', {}).get('count', 0)} sighting)", ""
    judged = next((j for j in data.get("judgements", {}).get("docs", [])
                   if j["id"] == verdicts[0].get("judgement_id")), {})
    return verdicts[0]["disposition_name"], judged.get("reason", "")


def show(relay, emulator, secret):
    """One line pair per rule; returns how many rows did NOT change the verdict."""
    print("\n=== MISP verdict rules: the same value before -> after a module setting "
          "(JWT claim) or a respond action")
    unchanged = 0
    claims = dict(emulator.module.CLAIMS)
    for rule, kind, value, before, after, action, change in ROWS:
        emulator.reset()
        observable = {"type": kind, "value": value}
        first, first_reason = _verdict(relay, cli.mint({**claims, **before}, secret),
                                       observable)
        if action:
            requests.post(f"{relay}/misp/respond/trigger", timeout=30,
                          headers={"Authorization": f"Bearer {cli.mint(claims, secret)}"},
                          json={"action-id": action, "observable_type": kind,
                                "observable_value": value})
        second, reason = _verdict(relay, cli.mint({**claims, **after}, secret), observable)
        unchanged += first == second
        print(f"  {rule:27} {value[:32]:32} {first:18} -> {second:18} [{change}]")
        label, why = ("reason", reason) if reason else ("reason before", first_reason or "-")
        print(f"  {'':27} {label}: {why}")
    emulator.reset()
    last, _ = _verdict(relay, cli.mint(claims, secret), {"type": "ip", "value": "203.0.113.130"})
    print(f"  {'filter: expiration sighting':27} {'203.0.113.130':32} {last:18} "
          "(event 1302 says High; its newest MISP sighting is an expiration)")
    return unchanged
