"""MISP verdicts analysts trust (issue 10) and MISP's hostile inputs (issue 11
items 5-7): every filter and rule, their order, each setting as env var and
as JWT claim, invalid values, the respond round trip — over HTTP against the
emulator; the order of the rules also on the pure mapping."""
import time
from datetime import datetime, timezone

import pytest

from api import ctim
from api.providers.misp import mapping
from tests import ctim_check
from tests.conftest import bearer
from tests.emulators import misp as emulator_data

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
BASE = "https://misp.example.org"
TYPES = {"203.0.113.10": "ip", "203.0.113.50": "ip", "203.0.113.77": "ip",
         "203.0.113.88": "ip", "203.0.113.89": "ip", "203.0.113.120": "ip",
         "203.0.113.130": "ip", "198.51.100.23": "ip", "8.8.8.8": "ip", "1.1.1.1": "ip",
         "update-check.example.org": "domain", "cdn-assets.example.org": "domain",
         "draft-only.example.org": "domain", "login-verify.example.net": "domain",
         "8b83fc5d3a6a80281269f9e337fe3fff": "md5"}
ACTIVE = 'adversary:infrastructure-status="active"'
BENIGN = 'false-positive:risk="high"'


@pytest.fixture
def misp(use_emulator):
    return use_emulator("misp")


def observable(value):
    return {"type": TYPES.get(value, "ip"), "value": value}


class Answer:
    """An observe (or deliberate) answer, read per observable value."""

    def __init__(self, body):
        self.body = body
        self.data = body.get("data", {})

    def docs(self, kind, value):
        return [d for d in self.data.get(kind, {}).get("docs", [])
                if d.get("observable", {}).get("value") == value
                or {"type": TYPES.get(value, "ip"), "value": value} in d.get("observables", [])]

    def verdict(self, value):
        found = self.docs("verdicts", value)
        return found[0]["disposition_name"] if found else None

    def deciding(self, value):
        """The judgement the verdict points at."""
        (verdict,) = self.docs("verdicts", value)
        return next(j for j in self.docs("judgements", value)
                    if j["id"] == verdict["judgement_id"])

    def errors(self):
        return self.body.get("errors", [])


def ask(client, values, settings=None, how="claim", env=None, route="observe"):
    """POST the values; `settings` go in as JWT claims or env vars."""
    claims = dict(emulator_data.CLAIMS)
    if settings and how == "claim":
        claims.update(settings)
    elif settings:
        for name, value in settings.items():
            env.setenv(name, value)
    body = client.post(f"/{route}/observables", json=[observable(v) for v in values],
                       headers=bearer(claims)).get_json()
    return Answer(body)


def searches(misp):
    return [r["json"] for r in misp.requests if r["path"] == "/events/restSearch"]


BOTH = pytest.mark.parametrize("how", ["env", "claim"])


# --- filters: an attribute that fails one is not evidence at all ------------------

@BOTH
def test_ids_only(client, misp, relay_env, how):
    assert ask(client, ["203.0.113.10"]).verdict("203.0.113.10") == "Malicious"
    answer = ask(client, ["203.0.113.10", "198.51.100.23"], {"MISP_IDS_ONLY": "true"},
                 how, relay_env)
    assert answer.docs("sightings", "203.0.113.10") == []
    assert answer.verdict("203.0.113.10") is None
    assert answer.verdict("198.51.100.23") == "Malicious"
    assert searches(misp)[-1]["to_ids"] == 1


def test_filters_hold_even_when_misp_ignores_them():
    event = {"uuid": "u-1", "threat_level_id": "1", "published": False,
             "Orgc": {"name": "Other CERT", "uuid": "ORG-UUID"},
             "Attribute": [{"value": "203.0.113.1", "to_ids": False, "timestamp": "1000"}]}
    obs = {"type": "ip", "value": "203.0.113.1"}
    hits = mapping.hits_from_raw([event], obs["value"])
    assert mapping.observe_bundle(obs, hits, BASE, 10, now=NOW).docs("verdicts")
    for rules in (mapping.Policy(ids_only=True), mapping.Policy(published_only=True),
                  mapping.Policy(lookback_days=30),
                  mapping.Policy(excluded_orgs=frozenset({"org-uuid"}))):
        assert not mapping.observe_bundle(obs, hits, BASE, 10, rules, now=NOW), rules
        assert not mapping.deliberate_bundle(obs, hits, rules, now=NOW), rules


@BOTH
def test_published_only(client, misp, relay_env, how):
    assert ask(client, ["draft-only.example.org"]).verdict("draft-only.example.org") \
        == "Malicious"
    answer = ask(client, ["draft-only.example.org"], {"MISP_PUBLISHED_ONLY": "yes"}, how,
                 relay_env)
    assert answer.data == {}
    assert searches(misp)[-1]["published"] == 1


@BOTH
def test_lookback_days_counts_the_attribute_timestamp(client, misp, relay_env, how):
    old, recent = "203.0.113.120", "203.0.113.50"   # 2019 and 2026 attributes
    assert ask(client, [old]).verdict(old) == "Malicious"
    days = int((time.time() - 1790400000) / 86400) + 30
    answer = ask(client, [old, recent], {"MISP_LOOKBACK_DAYS": str(days)}, how, relay_env)
    assert answer.verdict(old) is None and answer.docs("sightings", old) == []
    assert answer.verdict(recent) == "Malicious"
    assert searches(misp)[-1]["attribute_timestamp"] == f"{days}d"


@BOTH
@pytest.mark.parametrize("org", ["Financial ISAC (demo)", emulator_data.PARTNER["uuid"]])
def test_excluded_orgs_by_name_or_uuid(client, misp, relay_env, how, org):
    md5 = "8b83fc5d3a6a80281269f9e337fe3fff"
    assert ask(client, [md5]).verdict(md5) == "Suspicious"
    answer = ask(client, [md5, "198.51.100.23"], {"MISP_EXCLUDED_ORGS": f"Nobody, {org}"},
                 how, relay_env)
    assert answer.docs("sightings", md5) == [] and answer.verdict(md5) is None
    # 198.51.100.23 lost its partner event (1202) but keeps the others
    assert len(answer.docs("judgements", "198.51.100.23")) == 2


@BOTH
def test_untrusted_orgs_give_sightings_and_indicators_only(client, misp, relay_env, how):
    md5 = "8b83fc5d3a6a80281269f9e337fe3fff"
    answer = ask(client, [md5], {"MISP_TRUSTED_ORGS": "circl demo cert"}, how, relay_env)
    assert len(answer.docs("sightings", md5)) == 1
    assert answer.data["indicators"]["count"] == 1
    assert answer.data["relationships"]["count"] == 1      # sighting-of only
    assert answer.docs("judgements", md5) == [] and answer.verdict(md5) is None


def test_expiration_sighting_ends_the_evidence(client, misp):
    answer = ask(client, ["203.0.113.130", "203.0.113.50"])
    assert answer.docs("sightings", "203.0.113.130") == []
    assert answer.verdict("203.0.113.130") is None
    assert answer.verdict("203.0.113.50") == "Malicious"   # same event, not expired


# --- judgement rules ----------------------------------------------------------------

@BOTH
def test_tags_decide_attribute_tags_before_event_tags(client, misp, relay_env, how):
    before = ask(client, ["update-check.example.org", "cdn-assets.example.org"])
    assert before.verdict("update-check.example.org") == "Common"    # threat level 3
    answer = ask(client, ["update-check.example.org", "cdn-assets.example.org"],
                 {"MISP_MALICIOUS_TAGS": "tlp:amber+strict", "MISP_BENIGN_TAGS": BENIGN},
                 how, relay_env)
    # the event's tag makes one Malicious; the other's own attribute tag wins: Clean
    assert answer.verdict("update-check.example.org") == "Malicious"
    assert answer.deciding("update-check.example.org")["reason"] == \
        "MISP tag tlp:amber+strict on the event"
    assert answer.verdict("cdn-assets.example.org") == "Clean"
    assert answer.deciding("cdn-assets.example.org")["reason"] == \
        f"MISP tag {BENIGN} on the attribute"


def test_tags_as_a_claim_list_and_the_most_severe_within_the_rule(client, misp):
    answer = ask(client, ["update-check.example.org"],
                 {"MISP_SUSPICIOUS_TAGS": [ACTIVE], "MISP_MALICIOUS_TAGS": [ACTIVE, "x"],
                  "MISP_BENIGN_TAGS": [ACTIVE]})
    assert answer.verdict("update-check.example.org") == "Malicious"
    answer = ask(client, ["update-check.example.org"], {"MISP_SUSPICIOUS_TAGS": ACTIVE})
    assert answer.verdict("update-check.example.org") == "Suspicious"
    assert answer.deciding("update-check.example.org")["priority"] == 91


def test_false_positive_sighting_makes_clean_with_who_and_when(client, misp):
    answer = ask(client, ["203.0.113.77"])
    assert answer.verdict("203.0.113.77") == "Clean"
    judged = answer.deciding("203.0.113.77")
    assert judged["reason"] == ("Reported as a false positive in MISP by CIRCL Demo CERT "
                                "on 2026-09-26")
    assert judged["severity"] == "None"


@BOTH
def test_warninglists_mark_drop_off(client, misp, relay_env, how):
    listed = "List of known IPv4 public DNS resolvers"
    marked = ask(client, ["8.8.8.8", "1.1.1.1"])
    assert marked.verdict("8.8.8.8") == "Common"          # event 1302 says High
    assert marked.deciding("8.8.8.8")["reason"] == f"On MISP warninglist {listed}"
    assert marked.verdict("1.1.1.1") == "Common"          # on the list, in no event
    (alone,) = marked.docs("judgements", "1.1.1.1")
    assert alone["reason"] == f"On MISP warninglist {listed}"
    assert alone["source_uri"] == f"{misp.url}/warninglists/view/28"
    checks = [r for r in misp.requests if r["path"] == "/warninglists/checkValue"]
    assert checks[-1]["json"] == ["8.8.8.8", "1.1.1.1"]
    assert searches(misp)[-1]["includeWarninglistHits"] == 1
    misp.reset()
    off = ask(client, ["8.8.8.8", "1.1.1.1"], {"MISP_WARNINGLISTS": "off"}, how, relay_env)
    assert off.verdict("8.8.8.8") == "Malicious" and off.verdict("1.1.1.1") is None
    assert misp.calls == 1 and searches(misp)[0]["enforceWarninglist"] == 0
    misp.reset()
    dropped = ask(client, ["8.8.8.8", "203.0.113.50"], {"MISP_WARNINGLISTS": "DROP"}, how,
                  relay_env)
    assert dropped.verdict("8.8.8.8") is None
    assert dropped.verdict("203.0.113.50") == "Malicious"
    assert misp.calls == 1 and searches(misp)[0]["enforceWarninglist"] == 1


@BOTH
def test_enforce_warninglist_is_kept_as_an_alias_of_drop(client, misp, relay_env, how):
    answer = ask(client, ["8.8.8.8"], {"MISP_ENFORCE_WARNINGLIST": "true"}, how, relay_env)
    assert answer.data == {}
    assert searches(misp)[0]["enforceWarninglist"] == 1
    both = ask(client, ["8.8.8.8"], {"MISP_ENFORCE_WARNINGLIST": "true",
                                     "MISP_WARNINGLISTS": "mark"}, "claim")
    assert both.verdict("8.8.8.8") == "Common"            # the new name wins


@BOTH
def test_decay_sets_confidence_and_decayed_is_unknown(client, misp, relay_env, how):
    plain = ask(client, ["203.0.113.88", "203.0.113.89"])
    assert plain.verdict("203.0.113.88") == "Malicious"
    assert plain.deciding("203.0.113.89")["confidence"] == "Medium"
    answer = ask(client, ["203.0.113.88", "203.0.113.89"], {"MISP_DECAYING_MODEL": "1"},
                 how, relay_env)
    assert answer.verdict("203.0.113.88") == "Unknown"
    assert answer.deciding("203.0.113.88")["reason"] == \
        "Decayed in MISP: score 12.5, model NIDS Simple Decaying Model"
    fresh = answer.deciding("203.0.113.89")
    assert (answer.verdict("203.0.113.89"), fresh["confidence"]) == ("Malicious", "High")
    assert "decay score 91.3" in fresh["reason"]
    assert searches(misp)[-1]["includeDecayScore"] == 1
    assert searches(misp)[-1]["decayingModel"] == [1]


def test_decay_bands():
    assert [mapping._band(s) for s in (100, 80, 79.9, 50, 49, 0)] == \
        ["High", "High", "Medium", "Medium", "Low", "Low"]


def test_other_decaying_model_gives_its_own_band(client, misp):
    answer = ask(client, ["203.0.113.89"], {"MISP_DECAYING_MODEL": 2})
    assert answer.deciding("203.0.113.89")["confidence"] == "Low"


def test_threat_level_table(client, misp):
    answer = ask(client, ["198.51.100.23"])
    reasons = sorted(j["reason"] for j in answer.docs("judgements", "198.51.100.23"))
    assert reasons[0].startswith("MISP event 1201 threat level High: Credential phishing")
    dispositions = {j["reason"][:15]: j["disposition_name"]
                    for j in answer.docs("judgements", "198.51.100.23")}
    assert dispositions == {"MISP event 1201": "Malicious", "MISP event 1202": "Suspicious",
                            "MISP event 1203": "Common"}


# --- the order of the rules ----------------------------------------------------------

def _event(threat="1", tags=(), attribute_tags=(), sightings=(), decay=None, uuid="u-1",
           value="203.0.113.1"):
    attribute = {"value": value, "to_ids": True, "timestamp": "1790000000",
                 "Tag": [{"name": t} for t in attribute_tags],
                 "Sighting": [{"type": kind, "date_sighting": str(date),
                               "Organisation": {"name": "SOC"}} for date, kind in sightings]}
    if decay:
        attribute["decay_score"] = [{"score": decay[0], "decayed": decay[1],
                                     "DecayingModel": {"id": "1", "name": "M"}}]
    return {"uuid": uuid, "id": "7", "info": "x", "threat_level_id": threat,
            "Tag": [{"name": t} for t in tags], "Attribute": [attribute]}


def _verdict(events, rules, lists=None):
    obs = {"type": "ip", "value": "203.0.113.1"}
    hits = mapping.hits_from_raw(events, obs["value"])
    bundle = mapping.observe_bundle(obs, hits, BASE, 10, rules, lists, now=NOW)
    ctim_check.assert_valid("/observe/observables", {"data": bundle.json()}, [obs])
    quick = mapping.deliberate_bundle(obs, hits, rules, lists, now=NOW)
    (verdict,) = bundle.docs("verdicts")
    assert quick.docs("verdicts")[0]["disposition"] == verdict["disposition"]
    judged = next(j for j in bundle.docs("judgements") if j["id"] == verdict["judgement_id"])
    return verdict["disposition_name"], judged["reason"]


def test_first_rule_that_applies_wins_on_one_attribute():
    everything = [_event(threat="1", attribute_tags=["evil"],
                         sightings=[(1, "0"), (2, "1")], decay=(5.0, True))]
    lists = {"Public DNS": "28"}
    rules = mapping.Policy(malicious_tags=frozenset({"evil"}), decaying_model=1)
    assert _verdict(everything, rules, lists) == ("Malicious", "MISP tag evil on the attribute")
    rules = mapping.Policy(decaying_model=1)
    assert _verdict(everything, rules, lists)[0] == "Clean"              # false positive
    no_fp = [_event(threat="1", decay=(5.0, True))]
    assert _verdict(no_fp, rules, lists) == ("Common", "On MISP warninglist Public DNS")
    assert _verdict(no_fp, rules)[0] == "Unknown"                         # decayed
    assert _verdict(no_fp, mapping.Policy())[0] == "Malicious"            # threat level
    assert _verdict(no_fp, mapping.Policy(warninglists="off"), lists)[0] == "Malicious"


def test_verdict_follows_the_rule_order_across_events():
    threat = _event(threat="1", uuid="a")
    false_positive = _event(threat="4", uuid="b", sightings=[(1, "1")])
    tagged = _event(threat="4", uuid="c", tags=["watch"])
    rules = mapping.Policy(suspicious_tags=frozenset({"watch"}))
    assert _verdict([threat], rules)[0] == "Malicious"
    assert _verdict([threat, false_positive], rules)[0] == "Clean"
    assert _verdict([threat, false_positive, tagged], rules) == \
        ("Suspicious", "MISP tag watch on the event")


def test_tags_beat_warninglists_over_http(client, misp):
    answer = ask(client, ["8.8.8.8"], {"MISP_MALICIOUS_TAGS": "tlp:green"})
    assert answer.verdict("8.8.8.8") == "Malicious"
    assert answer.deciding("8.8.8.8")["reason"] == "MISP tag tlp:green on the event"


# --- TLP 2.0 and galaxies ------------------------------------------------------------

def test_tlp_2_and_galaxy_clusters_as_indicator_tags(client, misp):
    answer = ask(client, ["update-check.example.org", "login-verify.example.net"])
    assert answer.docs("judgements", "update-check.example.org")[0]["tlp"] == "amber"
    indicators = {i["title"]: i for i in answer.data["indicators"]["docs"]}
    tagged = indicators["Paste of C2 infrastructure (unrated)"]
    assert tagged["tlp"] == "amber"                                   # tlp:amber+strict
    assert "Attack Pattern: Application Layer Protocol - T1071" in tagged["tags"]
    assert "Threat Actor: APT28" in tagged["tags"]
    assert indicators["Unvetted OSINT feed import"]["tlp"] == "white"  # tlp:clear


# --- settings: claims, env, invalid values ------------------------------------------

@BOTH
@pytest.mark.parametrize("name,value", [
    ("MISP_IDS_ONLY", "maybe"), ("MISP_PUBLISHED_ONLY", "2"), ("MISP_LOOKBACK_DAYS", "0"),
    ("MISP_LOOKBACK_DAYS", "a week"), ("MISP_LOOKBACK_DAYS", "99999"),
    ("MISP_WARNINGLISTS", "hide"), ("MISP_ENFORCE_WARNINGLIST", "perhaps"),
    ("MISP_DECAYING_MODEL", "latest"), ("MISP_DECAYING_MODEL", "-1"),
])
def test_invalid_values_are_an_invalid_argument_naming_the_setting(
        client, misp, relay_env, how, name, value):
    answer = ask(client, ["198.51.100.23"], {name: value}, how, relay_env)
    (error,) = answer.errors()
    assert error["code"] == "invalid argument"
    origin = "JWT claim" if how == "claim" else "environment variable"
    assert error["message"].startswith(f"Invalid setting {name} ({origin})")
    assert misp.calls == 0
    deliberate = ask(client, ["198.51.100.23"], {name: value}, how, relay_env,
                     route="deliberate")
    assert deliberate.errors()[0]["code"] == "invalid argument"


def test_a_claim_wins_over_the_env_and_cannot_move_misp(client, misp, relay_env):
    relay_env.setenv("MISP_WARNINGLISTS", "off")
    assert ask(client, ["8.8.8.8"]).verdict("8.8.8.8") == "Malicious"
    answer = ask(client, ["8.8.8.8"], {"MISP_WARNINGLISTS": "mark",
                                       "API_URL": "http://127.0.0.1:9"})
    assert answer.verdict("8.8.8.8") == "Common"
    assert misp.calls == 3                    # still this MISP, not the claim's


def test_settings_are_declared_per_module():
    from api.providers.misp import PROVIDER

    assert set(PROVIDER.module_settings) >= {
        "MISP_IDS_ONLY", "MISP_PUBLISHED_ONLY", "MISP_LOOKBACK_DAYS", "MISP_EXCLUDED_ORGS",
        "MISP_TRUSTED_ORGS", "MISP_MALICIOUS_TAGS", "MISP_SUSPICIOUS_TAGS",
        "MISP_BENIGN_TAGS", "MISP_WARNINGLISTS", "MISP_ENFORCE_WARNINGLIST",
        "MISP_DECAYING_MODEL"}
    assert not {"API_URL", "MISP_CA_BUNDLE", "MISP_VERIFY_TLS"} & set(PROVIDER.module_settings)
    assert set(PROVIDER.module_settings) <= set(PROVIDER.env_vars)


def test_at_most_two_calls_with_every_setting_on(client, misp):
    values = [o["value"] for o in emulator_data.observables(100)] + list(TYPES)
    settings = {"MISP_IDS_ONLY": True, "MISP_PUBLISHED_ONLY": True, "MISP_LOOKBACK_DAYS": 3650,
                "MISP_EXCLUDED_ORGS": "x", "MISP_TRUSTED_ORGS": "CIRCL Demo CERT",
                "MISP_MALICIOUS_TAGS": ACTIVE, "MISP_DECAYING_MODEL": 1,
                "RELAY_CACHE_TTL": 0}   # each route asks MISP itself here
    for route in ("observe", "deliberate"):
        misp.reset()
        answer = ask(client, values, settings, route=route)
        assert "errors" not in answer.body
        assert misp.calls == 2


# --- respond round trip --------------------------------------------------------------

def _trigger(client, action, value):
    return client.post("/respond/trigger", headers=bearer(emulator_data.CLAIMS), json={
        "action-id": action, "observable_type": "ip", "observable_value": value}).get_json()


def test_respond_round_trip(client, misp):
    value = "203.0.113.50"
    before = ask(client, [value])
    assert before.verdict(value) == "Malicious"
    assert before.docs("sightings", value)[0]["count"] == 1
    assert _trigger(client, "misp-add-sighting", value) == {"data": {"status": "success"}}
    assert ask(client, [value]).docs("sightings", value)[0]["count"] == 2
    assert _trigger(client, "misp-report-false-positive", value)["data"]["status"] == "success"
    after = ask(client, [value])
    assert after.verdict(value) == "Clean"
    assert after.deciding(value)["reason"].startswith(
        "Reported as a false positive in MISP by CIRCL Demo CERT on ")
    assert ask(client, [value], route="deliberate").verdict(value) == "Clean"


# --- issue 11: MISP filter syntax, bad shapes, mapping cost --------------------------

@pytest.mark.parametrize("value", ["%", "!198.51.100.23", "%.example.net", "login-verify%"])
def test_filter_syntax_is_refused_not_sent(client, misp, value):
    answer = ask(client, [value, "198.51.100.23"])
    (error,) = answer.errors()
    assert error["code"] == "invalid argument"
    assert "cannot search" in error["message"] and "literally" in error["message"]
    assert answer.verdict("198.51.100.23") == "Malicious"
    assert answer.data["verdicts"]["count"] == 1
    assert all(v == "198.51.100.23" for s in searches(misp) for v in s["value"])
    trigger = _trigger(client, "misp-add-sighting", value)
    assert trigger["data"] == {"status": "failure"}
    assert trigger["errors"][0]["code"] == "invalid argument"


def test_only_refused_values_means_no_call(client, misp):
    answer = ask(client, ["%"])
    assert answer.errors()[0]["code"] == "invalid argument"
    assert misp.calls == 0


def test_emulator_reads_filter_syntax_as_misp_does(client, misp):
    """What the refusal protects from: `%` alone matches every event."""
    import requests

    answer = requests.post(f"{misp.url}/events/restSearch", json={"value": ["%"]},
                           headers={"Authorization": emulator_data.KEY}, timeout=5).json()
    assert len(answer["response"]) == len(emulator_data.EVENTS)


def _bad(event_id, **changes):
    event = {"id": str(event_id), "uuid": f"bad-{event_id}", "threat_level_id": "1",
             "info": f"bad {event_id}", "date": "2026-10-01", "timestamp": "1790000000",
             "Attribute": [{"value": "198.51.100.23", "type": "ip-dst", "to_ids": True,
                            "timestamp": "1790000000"}]}
    event.update(changes)
    return {"Event": event}


def test_badly_shaped_events_cost_only_themselves(client, misp):
    misp.options["extra_events"] = [
        _bad(1, Orgc="x"), _bad(2, Attribute=5), "not an event", {"Event": None},
        _bad(3, Object=[7]),
        # these two are readable: the bad part is left out, the event kept
        _bad(4, Attribute=[{"value": "198.51.100.23", "Sighting": [None], "to_ids": True}]),
        _bad(5, timestamp="99999999999999999999"),
    ]
    answer = ask(client, ["198.51.100.23", "8b83fc5d3a6a80281269f9e337fe3fff"])
    (error,) = answer.errors()
    assert error["code"] == "unexpected response"
    assert error["message"].startswith("MISP answered 5 malformed event(s), left out: ")
    assert "`Orgc` is a str" in error["message"]
    # the three good emulator events and the two readable extras judge
    assert len(answer.docs("judgements", "198.51.100.23")) == 5
    assert answer.verdict("8b83fc5d3a6a80281269f9e337fe3fff") == "Suspicious"
    ctim_check.assert_valid("/observe/observables", answer.body)


def test_misp_answer_without_event_list_is_one_clear_error(client, misp):
    misp.fail["*"] = "garbage"
    answer = ask(client, ["198.51.100.23"])
    assert {e["code"] for e in answer.errors()} == {"unexpected response"}


def test_warninglist_check_failure_keeps_the_events(client, misp):
    misp.fail["checkValue"] = 500
    answer = ask(client, ["198.51.100.23"])
    assert answer.verdict("198.51.100.23") == "Malicious"
    assert answer.errors()[0]["code"] == "service unavailable"


def test_odd_warninglist_answers():
    from api.errors import UnexpectedResponseError
    from api.providers.misp import client as misp_client

    class Ctx:
        pass

    def check(body):
        original = misp_client.call
        misp_client.call = lambda *a, **k: body
        try:
            return misp_client.check_warninglists(Ctx(), ["a"])
        finally:
            misp_client.call = original

    assert check([]) == {}
    assert check({"a": [{"id": 3, "name": "L"}, None, {"name": ""}], "b": 5}) == \
        {"a": {"L": "3"}}
    with pytest.raises(UnexpectedResponseError):
        check("text")


def test_many_observables_map_from_one_index():
    """Each value is looked up, not searched for among all events (issue 11.5)."""
    events = [{"Event": {"uuid": f"e-{n}", "id": str(n), "threat_level_id": "2",
                         "Attribute": [{"value": f"10.0.{n // 250}.{n % 250}"}]}}
              for n in range(600)]
    parsed, _ = mapping.parse_events(events)
    index = mapping.index_events(parsed)
    assert len(index) == 600
    hits = mapping.hits_for(index, "10.0.2.99")
    assert [h["event"]["uuid"] for h in hits] == ["e-599"]
    bundle = mapping.observe_bundle({"type": "ip", "value": "10.0.2.99"}, hits, BASE, 10,
                                    now=NOW)
    assert bundle.docs("verdicts")[0]["disposition"] == ctim.SUSPICIOUS


def test_module_type_offers_each_setting_as_an_optional_field(client, misp):
    """`custom_<NAME>` fields in modules/misp/module_type.json reach the relay as claims."""
    from tests.test_module_type import _committed, _module_claims

    body = _committed("misp")
    fields = {f["key"]: f for f in body["configuration_spec"]}
    from api.providers.misp import PROVIDER
    for name in PROVIDER.module_settings:
        assert fields[f"custom_{name}"]["required"] is False
        assert fields[f"custom_{name}"]["type"] == "string"
    claims = _module_claims(body, {"custom_key": emulator_data.KEY,
                                   "custom_MISP_WARNINGLISTS": "off"})
    answer = client.post("/observe/observables", json=[observable("8.8.8.8")],
                         headers=bearer(claims)).get_json()
    assert Answer(answer).verdict("8.8.8.8") == "Malicious"   # not marked: the field applied


def test_jwt_dev_takes_the_settings_from_the_claims_file(client, misp, relay_env, tmp_path):
    """`jwt dev -f claims.json`: the MISP settings travel as claims the relay honours."""
    import io
    import json
    import shutil

    import jwt as pyjwt

    from api.tools import cli
    from tests.ctim_check import ROOT

    for name in ("zappa_settings.json", "module_settings.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    relay_env.chdir(tmp_path)
    (tmp_path / "claims.json").write_text(json.dumps(
        {"key": emulator_data.KEY, "MISP_WARNINGLISTS": "off", "MISP_IDS_ONLY": True}))
    relay_env.setenv("SECRET_KEY", "s" * 64)
    out = io.StringIO()
    assert cli.main(["dev", "-f", "claims.json", "--reuse-secret"], out=out) == 0
    token = next(line.strip() for line in out.getvalue().splitlines()
                 if line.strip().count(".") == 2 and " " not in line.strip())
    assert pyjwt.decode(token, "s" * 64, algorithms=["HS256"])["MISP_IDS_ONLY"] is True
    body = client.post("/observe/observables", headers={"Authorization": f"Bearer {token}"},
                       json=[observable("8.8.8.8"), observable("203.0.113.10")]).get_json()
    assert Answer(body).verdict("8.8.8.8") == "Malicious"     # warninglists off
    assert Answer(body).verdict("203.0.113.10") is None       # not for IDS


def test_misp_down_is_one_error_not_one_per_call(client, misp):
    misp.fail["*"] = 503
    answer = ask(client, ["198.51.100.23"])
    assert misp.calls == 2
    assert [e["code"] for e in answer.errors()] == ["service unavailable"]


def test_odd_decay_scores_never_break_the_mapping():
    scores = [float("nan"), "inf", -5, "x", True, None, {"score": 1}]
    event = {"uuid": "u-1", "threat_level_id": "1", "Attribute": [{
        "value": "203.0.113.1",
        "decay_score": [{"score": s, "decayed": False} for s in scores] + [None]}]}
    attribute = mapping.parse_events([event])[0][0]["attributes"][0]
    assert [d["score"] for d in attribute["decay"]] == [-5.0]
    assert mapping._band(-5.0) == "Low"
    assert _verdict([event], mapping.Policy(decaying_model=1))[0] == "Malicious"


def test_slow_misp_is_one_timeout_error(client, misp, relay_env):
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.3")
    misp.latency = 0.8
    answer = ask(client, ["198.51.100.23"])
    assert [e["code"] for e in answer.errors()] == ["request timeout"]
