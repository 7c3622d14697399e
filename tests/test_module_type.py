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
from tests.conftest import SECRET, make_token
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
    assert body["properties"]["configuration-token-alg"] == "RS256"
    assert body["properties"]["custom_jwks_host"] == "visibility.amp.cisco.com"
    assert "configuration-token-key" not in body["properties"], "no secret in the repo"
    assert "SECRET_KEY" not in body["tips"]


def _generated(tmp_path, *args):
    assert module_type.main(["--out", str(tmp_path), *args]) == 0
    bodies = {name: json.loads((tmp_path / name / "module_type.json").read_text())
              for name in LOADED}
    for body in bodies.values():
        assert not ctim_check.schema_errors("module-type.schema.json", body)
    return bodies


@pytest.mark.parametrize("region,host", [("us", "visibility.amp.cisco.com"),
                                         ("eu", "visibility.eu.amp.cisco.com"),
                                         ("apjc", "visibility.apjc.amp.cisco.com")])
def test_rs256_for_each_region(tmp_path, region, host):
    url = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/dev/"
    for name, body in _generated(tmp_path, "--url", url, "--region", region).items():
        assert body["properties"]["url"] == url.rstrip("/") + f"/{name}"
        assert body["properties"]["configuration-token-alg"] == "RS256"
        assert body["properties"]["custom_jwks_host"] == host
        assert "configuration-token-key" not in body["properties"]


def test_hs256_with_the_secret_key(tmp_path):
    url = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/dev/"
    body = _generated(tmp_path, "--url", url, "--alg", "HS256",
                      "--secret-key", "k" * 64)[LOADED[0]]
    assert body["properties"]["url"] == url.rstrip("/") + f"/{LOADED[0]}"
    assert body["properties"]["configuration-token-alg"] == "HS256"
    assert body["properties"]["configuration-token-key"] == "k" * 64
    assert "custom_jwks_host" not in body["properties"]
    assert "SECRET_KEY" in body["tips"]


@pytest.mark.parametrize("args", [["--alg", "HS256"], ["--secret-key", "k" * 64],
                                  ["--alg", "HS256", "--secret-key", "short"],
                                  ["--region", "mars"]])
def test_inconsistent_options_are_refused(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        module_type.main(["--out", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert not list(tmp_path.iterdir())


def test_module_settings_become_optional_fields(tmp_path, monkeypatch):
    """A provider's `module_settings` flow into configuration_spec, described
    by its `env_vars`; XDR sends `custom_<NAME>` as claim `<NAME>`."""
    provider = providers.get(LOADED[0])
    monkeypatch.setattr(type(provider), "module_settings", ("X_ONLY_IDS",), raising=False)
    monkeypatch.setattr(type(provider), "env_vars",
                        {**provider.env_vars, "X_ONLY_IDS": "`true`: IDS attributes only"})
    spec = _generated(tmp_path)[LOADED[0]]["configuration_spec"]
    field = next(f for f in spec if f["key"] == "custom_X_ONLY_IDS")
    assert field["required"] is False and field["type"] == "string"
    assert field["tooltip"].startswith("`true`: IDS attributes only")


def _module_claims(body, values):
    """The configuration a module of this type carries: each `custom_<NAME>`
    field arrives as claim `<NAME>`."""
    return {f["key"][len("custom_"):]: values[f["key"]]
            for f in body["configuration_spec"] if f["key"] in values}


@pytest.mark.parametrize("alg", ["RS256", "HS256"])
@pytest.mark.parametrize("name", [n for n in LOADED if emulator_modules.load(n)])
def test_module_configuration_opens_the_relay(name, alg, client, use_emulator, xdr, tmp_path):
    """Every route a module type declares answers, without error, the token
    XDR builds from that type's configuration_spec: RS256 signed by XDR (its
    JWKS on loopback stands in for the type's `custom_jwks_host`), audience
    the type's url; or HS256 with the type's `configuration-token-key`."""
    emulator = use_emulator(name)
    args = ["--url", "http://localhost"]
    if alg == "HS256":
        args += ["--alg", "HS256", "--secret-key", SECRET]
    body = _generated(tmp_path, *args)[name]
    values = {f"custom_{k}": v for k, v in emulator.module.CLAIMS.items()}
    values["custom_CTR_ENTITIES_LIMIT"] = 5
    claims = _module_claims(body, values)
    if alg == "RS256":
        token = xdr.token({**claims, "aud": body["properties"]["url"]})
    else:
        now = int(time.time())
        token = make_token({**claims, "iat": now, "exp": now + 300},
                           secret=body["properties"]["configuration-token-key"])
    headers = {"Authorization": f"Bearer {token}"}
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
