"""Shared fixtures: env, app, a schema-validating client, tokens, emulators.

Every response the `client` fixture receives is checked against
../shared/ctim-schema and the contract's section 8 rules, so no test can
produce an invalid body unnoticed.
"""
import os

import jwt as pyjwt
import pytest
from flask.testing import FlaskClient

from api import cache, http, jwks, ratelimit
from tests import ctim_check
from tests.emulators import base as emulator_base

SECRET = "s3cret-for-tests-" + "x" * 47

# Never let boto3/botocore (zappa, moto tests) probe instance metadata or
# find real credentials.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

RELAY_VARS = ("SECRET_KEY", "API_URL", "CTR_ENTITIES_LIMIT", "RELAY_PROVIDER",
              "RELAY_HTTP_TIMEOUT", "RELAY_DEADLINE", "RELAY_CONCURRENCY",
              "RELAY_MAX_BODY_BYTES", "RELAY_MAX_OBSERVABLES", "RELAY_JWKS_HOSTS",
              "RELAY_PUBLIC_URLS", "RELAY_MAX_VALUE_LENGTH", "RELAY_MAX_RESPONSE_BYTES",
              "RELAY_CACHE_TTL", "RELAY_CACHE_BYTES", "RELAY_CACHE_TABLE")


class ValidatingClient(FlaskClient):
    """A Flask test client that validates every JSON body it receives."""

    def open(self, *args, **kwargs):
        requested = kwargs.get("json")
        response = super().open(*args, **kwargs)
        path = args[0] if args and isinstance(args[0], str) else kwargs.get("path", "")
        assert response.status_code != 500, response.get_data(as_text=True)
        assert response.is_json, f"{path}: not JSON: {response.get_data(as_text=True)[:200]}"
        body = response.get_json()
        if response.status_code == 200:
            ctim_check.assert_valid(
                path, body, requested if isinstance(requested, list) else None)
        else:
            assert not ctim_check.schema_errors("errors.schema.json", body), body
        return response


@pytest.fixture(autouse=True)
def relay_env(monkeypatch):
    """A clean relay environment with SECRET_KEY set; fresh HTTP state."""
    for name in list(os.environ):
        if name in RELAY_VARS or name.endswith("_API_URL"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", SECRET)
    http.reset_state()
    jwks.reset()
    ratelimit.reset()
    cache.reset()
    yield monkeypatch
    http.reset_state()
    ratelimit.reset()
    cache.reset()


@pytest.fixture(scope="session")
def app():
    from api import create_app

    application = create_app()
    application.test_client_class = ValidatingClient
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def make_token(claims=None, secret=SECRET, algorithm="HS256", headers=None):
    """An HS256 JWT as `jwt dev` mints it."""
    return pyjwt.encode(dict(claims if claims is not None else {"key": "test-key"}),
                        secret, algorithm=algorithm, headers=headers)


@pytest.fixture
def token():
    return make_token


def bearer(claims=None, **kwargs):
    return {"Authorization": f"Bearer {make_token(claims, **kwargs)}"}


@pytest.fixture(scope="session")
def emulators():
    """Started emulators by provider name, each started on first use."""
    started = {}

    class Registry(dict):
        def __missing__(self, name):
            emu = emulator_base.start(name)
            started[name] = emu
            self[name] = emu
            return emu

    registry = Registry()
    yield registry
    for emu in started.values():
        emu.stop()


@pytest.fixture
def use_emulator(emulators, relay_env):
    """Point the relay at provider `name`'s emulator; returns the emulator."""
    def use(name):
        emu = emulators[name]
        emu.reset()
        relay_env.setenv(emu.module.ENV_VAR, emu.url)
        return emu
    return use


# --- Cisco XDR's JWKS over TLS on loopback (tests/xdr.py) --------------------

@pytest.fixture(scope="session")
def ca(tmp_path_factory):
    from tests.xdr import TestCA

    return TestCA(tmp_path_factory.mktemp("xdr-ca"))


@pytest.fixture(scope="session")
def xdr_server(ca):
    from tests.xdr import Xdr

    server = Xdr(ca)
    yield server
    server.stop()


@pytest.fixture
def xdr(xdr_server, ca, relay_env):
    """XDR's JWKS on loopback, allowed and trusted by the relay."""
    xdr_server.reset()
    relay_env.setenv("RELAY_JWKS_HOSTS", f"visibility.amp.cisco.com, {xdr_server.host}")
    relay_env.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))
    relay_env.delenv("SSL_CERT_FILE", raising=False)
    return xdr_server
