"""Cisco XDR's side of RS256 configuration tokens, on loopback: a private CA,
a JWKS served over TLS by a certificate of that CA, and the RSA keys XDR
signs module tokens with (rotatable).

The relay trusts the CA through `REQUESTS_CA_BUNDLE` (or `SSL_CERT_FILE`),
as an operator behind a TLS-inspecting proxy would; nothing here reaches
beyond 127.0.0.1.
"""
import datetime
import ipaddress
import json
import threading
import time

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Response


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, ca, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


class TestCA:
    """A throwaway certificate authority and one server certificate for
    `localhost` / 127.0.0.1, written as PEM files under `folder`."""

    def __init__(self, folder):
        ca_key, server_key = _rsa(), _rsa()
        ca_cert = _certificate(_name("relay tests CA"), _name("relay tests CA"),
                               ca_key.public_key(), ca_key, ca=True)
        server_cert = _certificate(
            _name("localhost"), ca_cert.subject, server_key.public_key(), ca_key, ca=False,
            sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
        pem = serialization.Encoding.PEM
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca_cert.public_bytes(pem))
        self.cert_file = folder / "server.pem"
        self.cert_file.write_bytes(server_cert.public_bytes(pem))
        self.key_file = folder / "server.key"
        self.key_file.write_bytes(server_key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))


class SigningKey:
    """One of XDR's RSA signing keys and its JWK entry."""

    def __init__(self, kid):
        self.kid = kid
        self.private = _rsa()
        jwk = pyjwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


class Xdr:
    """XDR's JWKS endpoint over TLS on loopback, with the keys it signs with.

    `fetches` counts JWKS requests; `connections` counts accepted TCP
    connections (a refused host must make none); `status` / `body` override
    the answer for failure cases.
    """

    def __init__(self, ca):
        self._first = SigningKey("xdr-key-1")
        self.keys = [self._first]
        self.fetches = 0
        self.connections = 0
        self.status = 200
        self.body = None
        self.headers = {}
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True,
                                   ssl_context=(str(ca.cert_file), str(ca.key_file)))
        self._server.daemon_threads = True
        accept = self._server.get_request

        def counting_accept():
            with self._lock:
                self.connections += 1
            return accept()

        self._server.get_request = counting_accept
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self):
        """The `jwks_host` of this XDR: `localhost:<port>`."""
        return f"localhost:{self._server.server_port}"

    def _app(self, environ, start_response):
        with self._lock:
            self.fetches += 1
        if environ["PATH_INFO"] != "/.well-known/jwks":
            return Response("not found", 404)(environ, start_response)
        body = self.body if self.body is not None else \
            json.dumps({"keys": [k.jwk for k in self.keys]})
        return Response(body, self.status, headers=self.headers,
                        content_type="application/json")(environ, start_response)

    def reset(self):
        with self._lock:
            self.keys = [self._first]
            self.fetches = self.connections = 0
            self.status, self.body, self.headers = 200, None, {}

    def rotate(self, kid):
        """Publish a new signing key (the old one stays listed) and return it."""
        key = SigningKey(kid)
        self.keys = self.keys + [key]
        return key

    def token(self, claims, key=None, headers=None, lifetime=300):
        """A module's configuration token as XDR signs it."""
        key = key or self.keys[0]
        now = int(time.time())
        payload = {"iss": "https://visibility.amp.cisco.com", "iat": now,
                   "exp": now + lifetime, "jwks_host": self.host, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {k: v for k, v in {"kid": key.kid, **(headers or {})}.items()
                   if v is not None}
        return pyjwt.encode(payload, key.private, algorithm="RS256", headers=headers)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
