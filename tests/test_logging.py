"""No credential, JWT or Authorization header ever reaches the logs."""
import logging

import pytest

from tests.conftest import SECRET, make_token
from tests.emulators import NAMES, load

OBS = [{"type": "ip", "value": "198.51.100.23"}, {"type": "domain",
                                                  "value": "login-verify.example.net"}]


@pytest.mark.parametrize("name", [n for n in NAMES if load(n) is not None])
def test_requests_log_no_secret(client, use_emulator, caplog, name):
    emulator = use_emulator(name)
    claims = dict(emulator.module.CLAIMS)
    token = make_token(claims)
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": f"Bearer {token}"}
    for route in ("health", "observe/observables", "deliberate/observables",
                  "refer/observables", "respond/observables"):
        client.post(f"/{name}/{route}", json=OBS, headers=headers)
    emulator.fail["*"] = 500
    client.post(f"/{name}/observe/observables", json=OBS, headers=headers)
    client.post(f"/{name}/observe/observables", json=OBS,
                headers={"Authorization": "Bearer " + make_token(claims, secret="wrong" * 10)})
    logged = caplog.text
    for secret in [token, SECRET] + [v for v in claims.values() if isinstance(v, str)]:
        assert secret not in logged
