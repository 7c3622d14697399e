"""modules/<provider>/module_type.json: generated from the providers'
declarations, valid against ../shared's module-type schema, consistent with
the relay's routes, and the configuration they define opens the relay."""
import json
import time

import pytest

from api import providers
from api.tools import module_type
from tests import ctim_check
from tests import emulators as emulator_modules
from tests.conftest import bearer
from tests.lambda_env import REPO

MODULES = REPO / "modules"
ROUTES = {"health": "/health", "observe/observables": "/observe/observables",
          "deliberate/observables": "/deliberate/observables",
          "refer/observables": "/refer/observables",
          "respond/observables": "/respond/observables", "respond/trigger": "/respond/trigger"}
LOADED = [p.name for p in providers.available()]


def _committed(name):
    return json.loads((MODULES / name / "module_type.json").read_text())


def test_one_committed_file_per_provider_and_up_to_date(tmp_path):
    assert LOADED, "no provider loads"
    assert sorted(p.name for p in MODULES.iterdir() if p.is_dir()) == sorted(LOADED)
    assert module_type.main(["--out", str(MODULES), "--check"]) == 0, \
        "modules/ is stale: run `python -m api.tools.module_type`"
    assert module_type.main(["--out", str(tmp_path)]) == 0
    for name in LOADED:
        assert (tmp_path / name / "module_type.json").read_text() == \
            (MODULES / name / "module_type.json").read_text()


def test_check_reports_a_stale_file(tmp_path, capsys):
    module_type.main(["--out", str(tmp_path)])
    target = tmp_path / LOADED[0] / "module_type.json"
    target.write_text(target.read_text().replace('"title"', '"former_title"'))
    assert module_type.main(["--out", str(tmp_path), "--check"]) == 1
    assert str(target) in capsys.readouterr().err


@pytest.mark.parametrize("name", LOADED)
def test_valid_and_consistent_with_the_provider(name):
    body = _committed(name)
    assert not ctim_check.schema_errors("module-type.schema.json", body), \
        ctim_check.schema_errors("module-type.schema.json", body)
    provider = providers.get(name)
    assert body["title"] == provider.title
    assert body["external_references"][0]["link"] == provider.url
    assert body["properties"]["url"].endswith(f"/{name}")
    # capabilities <-> supported-apis (relay-contract section 7)
    caps = [c["id"] for c in body["capabilities"]]
    assert caps == [c for c in provider.capabilities if c in module_type.CAPABILITIES]
    apis = body["properties"]["supported-apis"]
    assert apis == [a for c in caps for a in module_type.CAPABILITIES[c][1]]
    # one required api_key field per credential claim, named custom_<claim>
    required = {f["key"] for f in body["configuration_spec"] if f.get("required")}
    assert required == {f"custom_{c}" for c in provider.credential_claims}
    assert body["properties"]["auth-type"] == "configuration-token"
    assert body["properties"]["configuration-token-alg"] == "HS256"
    assert "configuration-token-key" not in body["properties"], "no secret in the repo"


def test_url_and_key_for_a_deployment(tmp_path):
    url = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/dev/"
    assert module_type.main(["--out", str(tmp_path), "--url", url,
                             "--secret-key", "k" * 64]) == 0
    body = json.loads((tmp_path / LOADED[0] / "module_type.json").read_text())
    assert body["properties"]["url"] == url.rstrip("/") + f"/{LOADED[0]}"
    assert body["properties"]["configuration-token-key"] == "k" * 64
    assert not ctim_check.schema_errors("module-type.schema.json", body)


def _platform_claims(body, values):
    """The configuration token XDR builds for a module of this type:
    each `custom_<NAME>` field arrives as claim `<NAME>`, plus its own claims."""
    claims = {f["key"][len("custom_"):]: values[f["key"]]
              for f in body["configuration_spec"] if f["key"] in values}
    now = int(time.time())
    claims.update({"iss": "https://visibility.amp.cisco.com", "iat": now, "exp": now + 300,
                   "aud": body["properties"]["url"]})
    return claims


@pytest.mark.parametrize("name", [n for n in LOADED if emulator_modules.load(n)])
def test_module_configuration_opens_the_relay(name, client, use_emulator):
    """Every route a module type declares answers, without error, a token
    built from that type's configuration_spec (HS256 with SECRET_KEY)."""
    emulator = use_emulator(name)
    body = _committed(name)
    values = {f"custom_{k}": v for k, v in emulator.module.CLAIMS.items()}
    values["custom_CTR_ENTITIES_LIMIT"] = 5
    headers = bearer(_platform_claims(body, values))
    observables = emulator.module.observables(2)
    for api in body["properties"]["supported-apis"]:
        if api == "respond/trigger":
            continue  # needs an action id from respond/observables
        payload = None if api == "health" else observables
        answer = client.post(f"/{name}{ROUTES[api]}", json=payload, headers=headers)
        assert "errors" not in answer.get_json(), (api, answer.get_json())


def test_environment_variables_doc_lists_every_setting():
    """aws/EnvironmentVariables.md names every variable the relay reads."""
    from tests.conftest import RELAY_VARS

    doc = (REPO / "aws" / "EnvironmentVariables.md").read_text()
    names = set(RELAY_VARS) | {n for p in providers.available() for n in p.env_vars}
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, missing
