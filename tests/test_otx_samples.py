"""OTX mapping on recorded answers shaped like Cisco's (issue 11 item 14).

Cisco's OTX relay tests serve pulses without `created`/`modified` and pulse
indicator rows without their own `type`. Starting from the real recorded
samples (../shared/provider-samples/otx, read in place) with those fields
taken out, every pulse must still give valid CTIM, and rows must be matched
by value so that no sighting or relationship is lost.
"""
import copy

import pytest

from api.bundle import Bundle
from api.providers.otx import mapping
from tests import ctim_check, samples
from tests.conftest import bearer
from tests.emulators import otx as otx_emulator

BASE = "https://otx.alienvault.com"
PAGE_PULSE = "57204e9b3c4c3e015d93cb12"
IP = {"type": "ip", "value": "103.205.14.176"}


def undated(general):
    for pulse in general["pulse_info"]["pulses"]:
        for field in ("created", "modified", "is_modified", "modified_text"):
            pulse.pop(field, None)
    return general


def typeless_page(extra=()):
    """The recorded page without row types, plus rows for `extra` values
    (copies of its first row, as the Cisco mocks build them)."""
    page = samples.load("otx", f"pulse_indicators_page_{PAGE_PULSE}.json")
    for number, value in enumerate(extra):
        row = dict(copy.deepcopy(page["results"][0]), indicator=value, id=990000 + number,
                   created=f"2016-04-2{number}T05:31:07")
        page["results"].append(row)
    for row in page["results"]:
        row.pop("type", None)
    return page


def valid(docs, observables):
    bundle = Bundle()
    bundle.extend(docs)
    problems = ctim_check.check("/observe/observables", {"data": bundle.json()}, observables)
    assert not problems, problems[:3]
    return bundle.json()


@pytest.mark.parametrize("name,observable", [
    ("general_ipv4_hit_4pulses_103.205.14.176.json", IP),
    ("general_file_md5_hit_2pulses.json",
     {"type": "md5", "value": "f5ef3b060fb476253f9a7638f82940d9"}),
    ("general_ipv4_hit_1pulse_98.136.103.23.json", {"type": "ip", "value": "98.136.103.23"}),
])
def test_undated_pulses_give_valid_ctim(name, observable):
    general = undated(samples.load("otx", name))
    pulses = mapping.pulses(general)
    assert pulses
    docs = []
    for pulse in pulses:
        docs.extend(mapping.pulse_entities(observable, pulse, BASE))
    data = valid(docs, [observable])
    assert data["sightings"]["count"] == data["indicators"]["count"] == len(pulses)
    assert data["relationships"]["count"] == len(pulses)
    assert all(d["valid_time"]["start_time"] for d in data["indicators"]["docs"])
    # Without a date, such a pulse is always worth reading for the row's own date.
    assert all(mapping.modified_since_created(p) for p in pulses)


def test_undated_pulse_is_dated_by_its_row():
    general = undated(samples.load("otx", "general_ipv4_hit_4pulses_103.205.14.176.json"))
    pulse = mapping.pulses(general)[0]
    entry = mapping.find_entry(typeless_page([IP["value"]]), IP)
    sighting, indicator, _ = mapping.pulse_entities(IP, pulse, BASE, entry)
    assert sighting["observed_time"]["start_time"] == "2016-04-20T05:31:07Z"
    assert indicator["valid_time"]["start_time"] == "2016-04-20T05:31:07Z"


@pytest.mark.parametrize("observable,row", [
    (IP, "103.205.14.176"),
    ({"type": "ipv6", "value": "2001:db8::23"}, "2001:DB8:0:0::23"),
    ({"type": "url", "value": "http://evil.example/Path"}, "http://evil.example/Path"),
    ({"type": "hostname", "value": "WEBSERVER.servehttp.com"}, None),
    ({"type": "sha1", "value": "cbbfc3b5ff08de14fdb2316f3b14886dfe5504ef"}, None),
])
def test_typeless_rows_match_by_value(observable, row):
    page = typeless_page([row] if row else [])
    entry = mapping.find_entry(page, observable)
    assert entry is not None
    assert mapping.same_value(observable["type"], entry["indicator"], observable["value"])


def test_typeless_rows_keep_exact_url_paths():
    page = typeless_page(["http://evil.example/Path"])
    assert mapping.find_entry(page, {"type": "url", "value": "http://evil.example/path"}) is None


def test_typed_rows_come_first():
    page = typeless_page(["103.205.14.176"])
    typed = dict(page["results"][-1], type="IPv4", id=1, created="2016-01-01T00:00:00")
    page["results"].append(typed)
    assert mapping.find_entry(page, IP)["id"] == 1


def test_cisco_shaped_answers_over_http(client, use_emulator):
    """Undated pulses and typeless rows, served by the emulator: every pulse
    gives a sighting dated by the observable's row, and valid CTIM."""
    emulator = use_emulator("otx")
    general = undated(samples.load("otx", "general_ipv4_hit_4pulses_103.205.14.176.json"))
    pulse_ids = [p["id"] for p in general["pulse_info"]["pulses"]]
    page = typeless_page([IP["value"]])
    emulator.options["body"] = dict({IP["value"]: general}, **{pid: page for pid in pulse_ids})
    body = client.post("/otx/observe/observables", json=[IP],
                       headers=bearer(otx_emulator.CLAIMS)).get_json()
    assert "errors" not in body
    data = body["data"]
    assert data["sightings"]["count"] == data["relationships"]["count"] == 4
    assert data["indicators"]["count"] == 4
    # OTX_PULSE_LOOKUPS (3) pulses are dated by the row; the 4th when it was read.
    dated = [s["observed_time"]["start_time"] for s in data["sightings"]["docs"]]
    assert dated.count("2016-04-20T05:31:07Z") == 3
