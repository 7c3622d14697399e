"""`jwt dev`: settings files, prompts, output, and a token the relay accepts."""
import io
import json
import os
import re
import shutil

import pytest

from api.tools import cli
from tests.ctim_check import ROOT
from tests.emulators import misp as misp_emulator


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name in ("zappa_settings.json", "module_settings.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(args, answers=()):
    replies = iter(answers)
    prompts = []

    def ask(prompt):
        prompts.append(prompt)
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    code = cli.main(args, ask=ask, out=out)
    return code, out.getvalue(), prompts


def parse(output):
    lines = output.splitlines()
    token = lines[lines.index(next(x for x in lines if x.startswith("The JWT"))) + 1].strip()
    secret = lines[lines.index("The SECRET_KEY to validate the JWT is:") + 1].strip()
    return token, secret


def test_prompts_from_module_settings_until_answered(workdir):
    code, output, prompts = run(["dev"], ["", "  ", " the-misp-key "])
    assert code == 0
    assert prompts == ["Enter: MISP automation (auth) key: "] * 3
    token, secret = parse(output)
    import jwt

    assert jwt.decode(token, secret, algorithms=["HS256"]) == {"key": "the-misp-key"}
    assert re.fullmatch(r"[A-Za-z0-9]{64}", secret)
    assert ("https://console.aws.amazon.com/lambda/home?region=us-east-1#/functions/"
            "tr-intel-relay-dev/edit/environment-variables?tab=configuration") in output
    assert ("US: https://securex.us.security.cisco.com/settings/modules/available/"
            "86aad484-6344-42df-922d-916b9947ec47/new") in output


def test_claims_from_file_and_secrets_differ(workdir):
    (workdir / "claims.json").write_text(json.dumps({"key": "k", "CTR_ENTITIES_LIMIT": 50}))
    _, first, prompts = run(["dev", "-f", "claims.json"])
    _, second, _ = run(["dev", "-f", "claims.json"])
    assert prompts == []
    assert parse(first)[1] != parse(second)[1]


def test_provider_claims_come_from_the_provider(workdir):
    code, output, prompts = run(["dev", "--provider", "misp"], ["k"])
    assert code == 0 and prompts == ["Enter: MISP automation (auth) key: "]
    assert "Lambda's URL followed by /misp" in output
    token, secret = parse(output)
    import jwt

    # bound to its module: the relay refuses it on the other providers' routes
    assert jwt.decode(token, secret, algorithms=["HS256"]) == {"key": "k", "provider": "misp"}


def test_provider_bound_token_serves_its_provider_only(workdir, client, relay_env):
    (workdir / "claims.json").write_text(json.dumps({}))
    token, secret = parse(run(["dev", "--provider", "cyberprotect", "-f", "claims.json"])[1])
    relay_env.setenv("SECRET_KEY", secret)
    error = client.post("/otx/health", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert error["errors"][0]["message"] == \
        "Authorization failed: this JWT is for the 'cyberprotect' module, not 'otx'"


def test_reuse_secret_refuses_a_short_secret_key(workdir, monkeypatch, capsys):
    monkeypatch.setenv("SECRET_KEY", "x" * 31)
    assert run(["dev", "--reuse-secret"], ["k"])[0] == 1
    assert "SECRET_KEY is shorter than 32 bytes" in capsys.readouterr().err


def test_reuse_secret_signs_a_second_module_with_the_same_key(workdir, monkeypatch):
    _, first, _ = run(["dev"], ["misp-key"])
    secret = parse(first)[1]
    monkeypatch.setenv("SECRET_KEY", secret)
    code, second, prompts = run(["dev", "--provider", "cyberprotect", "--reuse-secret"])
    assert code == 0 and prompts == []
    token, reused = parse(second)
    import jwt

    assert reused == secret
    assert jwt.decode(token, secret, algorithms=["HS256"]) == {"provider": "cyberprotect"}
    monkeypatch.delenv("SECRET_KEY")
    assert run(["dev", "--reuse-secret"], ["k"])[0] == 1


def test_module_settings_without_claims_does_not_crash(workdir):
    (workdir / "module_settings.json").write_text(json.dumps(
        {"name": "No claims", "region": {"us": None}}))
    code, output, prompts = run(["dev"])
    assert code == 0 and prompts == []
    assert "US: N/A" in output


@pytest.mark.parametrize("setup,args,message", [
    (lambda d: os.remove(d / "zappa_settings.json"), ["dev"],
     "file 'zappa_settings.json' does not exist"),
    (lambda d: (d / "zappa_settings.json").write_text("{"), ["dev"],
     "file 'zappa_settings.json' is malformed"),
    (lambda d: None, ["prod"], "stage 'prod' does not exist"),
    (lambda d: os.remove(d / "module_settings.json"), ["dev"],
     "file 'module_settings.json' does not exist"),
    (lambda d: (d / "c.json").write_text("[1]"), ["dev", "-f", "c.json"],
     "file 'c.json' must hold a JSON object"),
    (lambda d: None, ["dev", "--provider", "virustotal"], "provider 'virustotal' is not one of"),
    (lambda d: None, ["dev"], "no value given for 'MISP automation (auth) key'"),
])
def test_errors_exit_1_with_a_message(workdir, capsys, setup, args, message):
    setup(workdir)
    code, output, _ = run(args)
    assert code == 1 and output == ""
    assert f"jwt: error: {message}" in capsys.readouterr().err


def test_minted_token_is_accepted_by_the_relay(workdir, client, use_emulator, relay_env):
    emulator = use_emulator("misp")
    (workdir / "claims.json").write_text(json.dumps(misp_emulator.CLAIMS))
    token, secret = parse(run(["dev", "-f", "claims.json"])[1])
    relay_env.setenv("SECRET_KEY", secret)
    body = client.post("/health", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body == {"data": {"status": "ok"}}
    assert emulator.calls == 1
