"""Authentication: the secret's strength, auth before setup errors, paths
that never redirect."""
import pytest

from api import providers
from api.providers.base import Provider
from tests.conftest import bearer

OBS = [{"type": "ip", "value": "198.51.100.23"}]


class Recorder(Provider):
    """Stands in for every provider: its health records the request context."""

    title = "Recorder"
    supported_types = frozenset({"ip"})
    credential_claims = ("key",)
    capabilities = ("health",)
    seen = []

    def health(self, ctx):
        Recorder.seen.append(ctx)


@pytest.fixture
def recorder(monkeypatch):
    Recorder.seen = []
    for name in providers.NAMES:
        monkeypatch.setitem(providers._loaded, name, type(name, (Recorder,), {"name": name})())
    return Recorder.seen


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("weak", [" ", "a", "x" * 31, "é" * 15])
def test_weak_secret_key_is_refused_with_a_clear_reason(client, relay_env, weak):
    relay_env.setenv("SECRET_KEY", weak)
    body = client.post("/health", headers=bearer(secret=weak)).get_json()
    assert body == {"errors": [{
        "type": "fatal", "code": "authorization error",
        "message": "Authorization failed: SECRET_KEY is too short: it must be at least "
                   "32 bytes (`jwt dev` prints a 64-character one)"}]}


def test_a_32_byte_secret_key_is_enough(client, relay_env, recorder):
    relay_env.setenv("SECRET_KEY", "é" * 16)
    body = client.post("/otx/health", headers=bearer(secret="é" * 16)).get_json()
    assert body == {"data": {"status": "ok"}} and len(recorder) == 1


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer x.y.z"}])
def test_bad_relay_provider_is_not_reported_before_authentication(client, relay_env, headers):
    relay_env.setenv("RELAY_PROVIDER", "virustotal")
    error = client.post("/observe/observables", json=OBS, headers=headers).get_json()["errors"]
    assert [e["code"] for e in error] == ["authorization error"]
    assert "virustotal" not in str(error)


@pytest.mark.parametrize("path", ["//observe/observables", "/misp//health", "//health",
                                  "/health//", "//misp/refer/observables"])
def test_double_slash_answers_json_without_a_redirect(client, path):
    response = client.post(path, json=OBS, headers={**bearer(), "Host": "evil.example"})
    assert response.status_code < 300 or response.status_code >= 400
    assert "Location" not in response.headers
    assert response.is_json and response.get_json()["errors"][0]["type"] == "fatal"
