"""Badly shaped upstream JSON (issue 11 item 6) for OTX, Pulsedive and Threatscore.

Each provider's real recorded answers (../shared/provider-samples, read in
place) are mutated one field at a time into every wrong JSON type; the
provider's own code maps each mutant. Either the answer is valid CTIM, or
that observable gets a clear `unexpected response` error: never another
exception. Over HTTP, one badly shaped answer costs its own observable only.
"""
import copy
import json
import time

import pytest

from api import ctim
from api.bundle import Bundle
from api.context import RequestContext
from api.errors import UnexpectedResponseError
from api.providers import cyberprotect, otx, pulsedive
from api.settings import Settings
from tests import ctim_check, samples
from tests.conftest import bearer
from tests.emulators import otx as otx_emulator

WRONG = (-1, 1e308, "x", "", None, True, [None], {"x": 5})


def mutants(doc, only=None):
    """(path, copy of `doc` with the value at path replaced by one WRONG value).

    `only(path)` limits the paths; a list's first item stands for all of them.
    """
    def paths(node, path):
        yield path
        if isinstance(node, dict):
            for key, value in node.items():
                yield from paths(value, path + (key,))
        elif isinstance(node, list) and node:
            yield from paths(node[0], path + (0,))

    for path in paths(doc, ()):
        if not path or (only and not only(path)):
            continue
        for value in WRONG:
            mutated = copy.deepcopy(doc)
            parent = mutated
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = copy.deepcopy(value)
            yield path, value, mutated


def context(**env):
    settings = Settings.from_env(env)
    return RequestContext("Test", settings, claims={"key": "k"},
                          deadline=time.monotonic() + 60)


def assert_maps_or_refuses(build, observable, path, value):
    """`build()` gives a valid bundle, or raises UnexpectedResponseError."""
    try:
        bundle = build()
    except UnexpectedResponseError as error:
        assert error.message and "Traceback" not in error.message
        return "refused"
    except Exception as error:  # noqa: BLE001 - the point of the test
        raise AssertionError(f"{path} = {value!r}: {type(error).__name__}: {error}") from None
    body = {"data": bundle.json()}
    problems = ctim_check.check("/observe/observables", body, [observable])
    assert not problems, (path, value, problems[:3])
    return "mapped"


# --- OTX ----------------------------------------------------------------------------
OTX_IP = {"type": "ip", "value": "103.205.14.176"}


def _otx_observe(monkeypatch, general, page=None):
    provider = otx.PROVIDER
    monkeypatch.setattr(otx.client, "general", lambda ctx, kind, value: general)
    monkeypatch.setattr(otx.client, "pulse_indicators", lambda *args: page)
    ctx = context(OTX_PULSE_LOOKUPS="0" if page is None else "1")

    def build():
        lookups = otx.provider.PulseLookups(ctx)
        try:
            bundle = provider._observe_one(ctx, OTX_IP, lookups)
        finally:
            lookups.close()
        bundle.merge(provider.deliberate_one(ctx, OTX_IP))
        return bundle
    return build


# The fields of `general` the relay reads (mutating the others proves nothing and
# costs seconds); pulses share one shape, so the first pulse stands for all.
OTX_READ = {"pulse_info", "pulses", "count", "validation", "false_positive", "False_positive",
            "source", "name", "assessment", "id", "description", "author", "username",
            "author_name", "TLP", "tlp", "tags", "references", "created", "modified",
            "is_modified", 0}


def _otx_read_fields(path):
    return all(step in OTX_READ for step in path)


def test_otx_general_answers_of_any_shape(monkeypatch):
    general = samples.load("otx", "general_ipv4_hit_4pulses_103.205.14.176.json")
    seen = set()
    for path, value, mutated in mutants(general, _otx_read_fields):
        seen.add(assert_maps_or_refuses(_otx_observe(monkeypatch, mutated),
                                        OTX_IP, path, value))
    assert seen == {"mapped", "refused"}


def test_otx_pulse_indicator_pages_of_any_shape(monkeypatch):
    page = samples.load("otx", "pulse_indicators_page_57204e9b3c4c3e015d93cb12.json")
    general = samples.load("otx", "general_ipv4_hit_4pulses_103.205.14.176.json")
    for pulse in general["pulse_info"]["pulses"]:
        pulse["id"] = "57204e9b3c4c3e015d93cb12"
        pulse["is_modified"] = True
    for path, value, mutated in mutants(page):
        assert_maps_or_refuses(_otx_observe(monkeypatch, general, mutated), OTX_IP, path, value)


@pytest.mark.parametrize("field,value,message", [
    (("pulse_info", "pulses"), 5, "'pulse_info.pulses' is not a list"),
    (("validation",), -1, "'validation' is not a list"),
    (("pulse_info",), [], "'pulse_info' is not an object"),
    (("false_positive",), "x", "'false_positive' is not a list"),
])
def test_otx_wrong_sections_cost_their_observable(monkeypatch, field, value, message):
    general = samples.load("otx", "general_ipv4_hit_4pulses_103.205.14.176.json")
    parent = general
    for step in field[:-1]:
        parent = parent[step]
    parent[field[-1]] = value
    with pytest.raises(UnexpectedResponseError) as raised:
        _otx_observe(monkeypatch, general)()
    assert raised.value.message == (
        f"AlienVault OTX answered a 'general' section whose {message}; its API changed")


def test_otx_bad_shape_costs_that_observable_only(client, use_emulator):
    emulator = use_emulator("otx")
    emulator.options["body"] = {"198.51.100.23": {"pulse_info": {"pulses": 5, "count": 1}},
                                "198.51.100.24": {"validation": -1}}
    observables = [{"type": "ip", "value": v}
                   for v in ("198.51.100.23", "198.51.100.24")] + [
        {"type": "domain", "value": "login-verify.example.net"}]
    body = client.post("/otx/observe/observables", json=observables,
                       headers=bearer(otx_emulator.CLAIMS)).get_json()
    assert [(e["code"], e["message"].split(":")[0]) for e in body["errors"]] == [
        ("unexpected response", "ip 198.51.100.23"),
        ("unexpected response", "ip 198.51.100.24")]
    verdicts = body["data"]["verdicts"]["docs"]
    assert [v["observable"]["value"] for v in verdicts] == ["login-verify.example.net"]


# --- Pulsedive ------------------------------------------------------------------------
PULSEDIVE_SAMPLES = {
    "info_domain_parkingcrew.net_medium_threats_feeds.json":
        {"type": "domain", "value": "parkingcrew.net"},
    "info_domain_cisco.com_none_retired.json": {"type": "domain", "value": "cisco.com"},
    "info_ip_144.76.107.175_none_retired_trimmed.json":
        {"type": "ip", "value": "144.76.107.175"},
}


# The info.php fields the relay reads (see OTX_READ).
PULSEDIVE_READ = {"iid", "risk", "retired", "stamp_added", "stamp_updated", "stamp_seen",
                  "stamp_retired", "properties", "dns", "A", "AAAA", "riskfactors",
                  "description", "threats", "name", "category", "tid", "feeds", "fid",
                  "organization", 0}


@pytest.mark.parametrize("name", sorted(PULSEDIVE_SAMPLES))
def test_pulsedive_info_answers_of_any_shape(monkeypatch, name):
    observable = PULSEDIVE_SAMPLES[name]
    info = samples.load("pulsedive", name)
    provider = pulsedive.PROVIDER
    ctx = context()
    seen = set()
    for path, value, mutated in mutants(
            info, lambda path: all(step in PULSEDIVE_READ for step in path)):
        monkeypatch.setattr(pulsedive.client, "info", lambda ctx, value, doc=mutated: doc)

        def build():
            bundle = provider.observe_one(ctx, observable)
            bundle.merge(provider.deliberate_one(ctx, observable))
            return bundle
        seen.add(assert_maps_or_refuses(build, observable, path, value))
    assert "mapped" in seen


def test_pulsedive_links_answers_of_any_shape():
    links = samples.load("pulsedive", "info_get_links_active_dns.json")
    observable = {"type": "ip", "value": "144.76.107.175"}
    for path, value, mutated in mutants(links):
        def build():
            bundle = Bundle()
            for doc in pulsedive.mapping.links_relations(observable, mutated):
                bundle.add(doc)
            return bundle
        assert_maps_or_refuses(build, observable, path, value)


# --- Threatscore | Cyberprotect ---------------------------------------------------------
def test_cyberprotect_scores_of_any_shape(monkeypatch):
    document = samples.load("cyberprotect", "score_ip_1.1.1.1_suspicious.json")
    observable = {"type": "ip", "value": "1.1.1.1"}
    provider = cyberprotect.PROVIDER
    ctx = context()
    seen = set()
    for path, value, mutated in mutants(document):
        monkeypatch.setattr(cyberprotect.client, "fetch_score",
                            lambda ctx, value, doc=mutated: doc)

        def build():
            bundle = provider.observe_one(ctx, observable)
            bundle.merge(provider.deliberate_one(ctx, observable))
            return bundle
        seen.add(assert_maps_or_refuses(build, observable, path, value))
    assert seen == {"mapped", "refused"}


def test_time_parsing_survives_any_value():
    for value in WRONG + ("9" * 25, "-" * 3, "2024-13-45T99:99:99", float("nan"), -10 ** 30):
        moment = ctim.parse_time(value)
        assert moment is None or moment.year >= 1
    json.dumps(WRONG)  # every mutant value is JSON
