"""Helpers for the offline AWS tests: the lean Lambda virtualenv, a loopback
AWS emulator (moto), a sealed environment for the `zappa` CLI, and a runner
that calls the packaged `handler.lambda_handler` outside the test virtualenv.

Nothing here reaches beyond 127.0.0.1 except `pip install` when the lean
virtualenv is (re)built from requirements.txt.
"""
import base64
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import parse_qs

REPO = Path(__file__).resolve().parents[1]
LAMBDA_VENV = REPO / ".venv-lambda"
STAGE = "dev"
ACCOUNT_ID = "123456789012"     # moto's default account
DEAD_PROXY = "http://127.0.0.1:9"  # nothing listens there: HTTPS fails at once

# What the AWS Lambda Python runtime provides beside /var/task: the zip
# excludes these, so the local runner takes them from the test virtualenv.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py")


# --- the lean virtualenv Zappa packages from --------------------------------

def _fingerprint():
    digest = hashlib.sha256()
    for name in ("requirements.txt", "requirements-pins.txt", "pyproject.toml"):
        digest.update((REPO / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _path_tag():
    return hashlib.sha256(str(REPO).encode()).hexdigest()[:12]


def ensure_lambda_venv():
    """`.venv-lambda`: `pip install -r requirements.txt` alone (the pins and the
    project, so the `jwt` command), reused while the requirements are unchanged."""
    stamp = LAMBDA_VENV / ".requirements.sha256"
    wanted = _fingerprint()
    lock_path = Path(tempfile.gettempdir()) / f"venv-lambda-{_path_tag()}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == wanted \
                and (LAMBDA_VENV / "bin" / "zappa").is_file():
            return LAMBDA_VENV
        # `venv` run from the test virtualenv builds on its base interpreter.
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(LAMBDA_VENV)],
                       check=True)
        pip = [str(LAMBDA_VENV / "bin" / "pip"), "install", "-q",
               "--disable-pip-version-check"]
        subprocess.run(pip + ["-r", "requirements.txt"], check=True, cwd=REPO)
        stamp.write_text(wanted)
    return LAMBDA_VENV


# --- the sealed environment for AWS clients ---------------------------------

def aws_env(home, endpoint=None, venv=LAMBDA_VENV, region="us-east-1"):
    """Environment for a `zappa` subprocess: the lean venv active, dummy
    credentials under the profile aws/HOWTO.md creates, a throwaway HOME,
    no instance-metadata probe, every HTTPS request refused on loopback."""
    home = Path(home)
    aws_dir = home / ".aws"
    aws_dir.mkdir(parents=True, exist_ok=True)
    tmp = home / "tmp"
    tmp.mkdir(exist_ok=True)
    profile = load_settings()[STAGE].get("profile_name", "default")
    (aws_dir / "credentials").write_text(
        f"[{profile}]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    section = "default" if profile == "default" else f"profile {profile}"
    (aws_dir / "config").write_text(f"[{section}]\nregion = {region}\noutput = json\n")
    keep = ("LANG", "LC_ALL", "TERM", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({
        "HOME": str(home),
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "TMPDIR": str(tmp),
        "AWS_CONFIG_FILE": str(aws_dir / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": region,
        # Zappa's update check and wheel lookup go to pypi.org over HTTPS:
        # through a dead loopback proxy they fail in milliseconds.
        "HTTPS_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def tmpfs_home(prefix="relay-aws-"):
    """A throwaway HOME, on tmpfs when there is one (Zappa's packaging is
    disk-bound); the caller removes it."""
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


# --- settings ----------------------------------------------------------------

def load_settings():
    """The project's own zappa_settings.json."""
    return json.loads((REPO / "zappa_settings.json").read_text())


# Only what cannot work offline differs from the real stage.
OFFLINE_OVERRIDES = {
    "touch": False,                      # GET of the real API URL after deploy
    "use_precompiled_packages": False,   # manylinux wheel lookup on PyPI
}


def write_test_settings(directory, settings=None):
    """A settings file (`zappa -s`) = the real `dev` stage + OFFLINE_OVERRIDES."""
    settings = json.loads(json.dumps(settings or load_settings()))
    settings[STAGE].update(OFFLINE_OVERRIDES)
    path = Path(directory) / "zappa_settings.offline.json"
    path.write_text(json.dumps(settings, indent=2))
    return path


def zappa(args, env, settings_file, timeout=120):
    """Run the real `zappa` CLI of the lean venv from the repository root."""
    command = [str(Path(env["VIRTUAL_ENV"]) / "bin" / "zappa"), *args, "-s", str(settings_file)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def package(home, zip_path):
    """`zappa package dev -o zip_path` from the lean venv; returns its seconds."""
    ensure_lambda_venv()
    env = aws_env(home)  # no endpoint: packaging needs no AWS at all
    settings_file = write_test_settings(home)
    started = time.perf_counter()
    done = zappa(["package", STAGE, "-o", str(zip_path)], env, settings_file)
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return time.perf_counter() - started


def jwt_dev(claims_file, provider=None, venv=LAMBDA_VENV):
    """(JWT, SECRET_KEY) printed by `jwt dev -f FILE` run in the repository."""
    command = [str(venv / "bin" / "jwt"), STAGE, "-f", str(claims_file)]
    if provider:
        command += ["--provider", provider]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": "/nonexistent"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    token = lines[lines.index(next(x for x in lines if x.startswith("The JWT for"))) + 1]
    secret = lines[lines.index("The SECRET_KEY to validate the JWT is:") + 1]
    return token.strip(), secret.strip()


# --- moto on loopback ----------------------------------------------------------

_FUNCTION_URLS = re.compile(r"^/2021-10-31/functions/(?P<name>[^/]+)/urls/?$")


class _Recorder:
    """WSGI middleware: records (service, operation) of every AWS call and
    answers the one call moto 5.2.5 lacks."""

    def __init__(self, app, operations):
        self.app = app
        self.operations = operations

    def __call__(self, environ, start_response):
        body = _read_body(environ)
        service = _signing_service(environ.get("HTTP_AUTHORIZATION", ""))
        op = operation_name(service, environ, body)
        self.operations.append((service, op, environ["REQUEST_METHOD"],
                                environ.get("PATH_INFO", "")))
        match = _FUNCTION_URLS.match(environ.get("PATH_INFO", ""))
        if service == "lambda" and environ["REQUEST_METHOD"] == "GET" and match:
            return _list_function_url_configs(match["name"], environ, start_response)
        return self.app(environ, start_response)


def _read_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _signing_service(authorization):
    match = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", authorization)
    return match.group(1) if match else "?"


def _list_function_url_configs(name, environ, start_response):
    """lambda:ListFunctionUrlConfigs, absent from moto 5.2.5 (`zappa update`
    calls it through delete_lambda_function_url). Answered from moto's own
    Lambda backend so the reply stays true to what the emulator holds."""
    from moto.awslambda.models import lambda_backends
    from moto.awslambda.exceptions import UnknownFunctionException

    region = _signing_region(environ.get("HTTP_AUTHORIZATION", ""))
    backend = lambda_backends[ACCOUNT_ID][region]
    headers = [("Content-Type", "application/json")]
    try:
        function = backend.get_function(name.split(":")[-1] if name.startswith("arn:") else name)
    except UnknownFunctionException:
        start_response("404 Not Found", headers + [
            ("x-amzn-ErrorType", "ResourceNotFoundException")])
        return [json.dumps({"Type": "User", "Message": f"Function not found: {name}"}).encode()]
    configs = [function.url_config.to_dict()] if getattr(function, "url_config", None) else []
    start_response("200 OK", headers)
    return [json.dumps({"FunctionUrlConfigs": configs}).encode()]


def _signing_region(authorization):
    match = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/", authorization)
    return match.group(1) if match else "us-east-1"


_MODELS = {}


def operation_name(service, environ, body):
    """The API operation of a signed AWS request, from botocore's models."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1]
    if body.startswith(b"Action=") or b"&Action=" in body:
        return parse_qs(body.decode())["Action"][0]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "Action" in query:
        return query["Action"][0]
    if "x-id" in query:
        return query["x-id"][0]
    path = environ.get("PATH_INFO", "")
    method = environ["REQUEST_METHOD"]
    best = None
    for op_name, verb, regex, qs_keys, headers, score in _rest_model(service):
        if verb == method and regex.match(path) and all(k in query for k in qs_keys) \
                and all(environ.get(h) for h in headers):
            if best is None or score > best[1]:
                best = (op_name, score)
    return best[0] if best else f"{method} {path}"


def _rest_model(service):
    """(operation, method, path regex, required query keys, required headers,
    specificity) for each operation of a REST-protocol service."""
    if service in _MODELS:
        return _MODELS[service]
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(service)
    except Exception:
        _MODELS[service] = []
        return []
    entries = []
    for op_name in model.operation_names:
        operation = model.operation_model(op_name)
        path, _, literal = operation.http["requestUri"].partition("?")
        regex = re.sub(r"\\\{[^}]+?\\\+\\\}", ".+", re.escape(path))
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", regex)
        qs_keys = [part.split("=")[0] for part in literal.split("&") if part]
        headers = []
        shape = operation.input_shape
        for member in (shape.required_members if shape else []):
            location = shape.members[member].serialization
            if location.get("location") == "querystring":
                qs_keys.append(location["name"])
            elif location.get("location") == "header":
                headers.append("HTTP_" + location["name"].upper().replace("-", "_"))
        score = len(path) + 100 * (len(qs_keys) + len(headers))
        entries.append((op_name, operation.http["method"], re.compile(f"^{regex.rstrip('/')}/?$"),
                        qs_keys, headers, score))
    _MODELS[service] = entries
    return entries


class MotoServer:
    """moto's server app on 127.0.0.1:<free port>, in this process (so tests
    can read its backends), wrapped by `_Recorder`."""

    def __init__(self):
        from moto.moto_server.werkzeug_app import (DomainDispatcherApplication,
                                                   MotoRequestHandler, create_backend_app)
        from werkzeug.serving import make_server

        self.operations = []
        app = _Recorder(DomainDispatcherApplication(create_backend_app), self.operations)

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args, **kwargs):
                pass

        self._server = make_server("127.0.0.1", 0, app, threaded=True,
                                   request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.reset()
        self._server.shutdown()
        self._server.server_close()

    def reset(self):
        """Forget every resource the emulator holds (moto's reset API)."""
        import requests

        requests.post(self.url + "/moto-api/reset", timeout=10)
        self.operations.clear()

    def client(self, service, region="us-east-1"):
        """A boto3 client of this emulator with dummy credentials."""
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def function_zip(self, name, region="us-east-1"):
        """The code package moto holds for Lambda function `name`."""
        from moto.awslambda.models import lambda_backends

        return lambda_backends[ACCOUNT_ID][region].get_function(name).code_bytes


# --- the packaged handler, run as AWS Lambda would -----------------------------

def runtime_layer(directory):
    """A folder with the libraries the Lambda runtime adds after /var/task."""
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    layer = Path(directory) / "var-runtime"
    layer.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PROVIDED:
        target = layer / name
        if not target.exists():
            target.symlink_to(site / name)
    return layer


def unpack(zip_bytes_or_path, directory):
    """Unzip a Lambda package into `directory` (the stand-in for /var/task)."""
    task = Path(directory)
    if task.exists():
        shutil.rmtree(task)
    task.mkdir(parents=True)
    source = zip_bytes_or_path
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    with zipfile.ZipFile(source) as archive:
        archive.extractall(task)
    return task


_RUNNER = r"""
import json, sys, time
started = time.perf_counter()
import handler  # the module Zappa generated, as Lambda imports it
imported = time.perf_counter() - started

class Context:
    aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/" + sys.argv[1]
    log_stream_name = "2026/01/01/[$LATEST]0"
    function_name = sys.argv[1]
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[1]
    def get_remaining_time_in_millis(self):
        return 28000

events = json.load(sys.stdin)
results, seconds = [], []
for event in events:
    begun = time.perf_counter()
    results.append(handler.lambda_handler(event, Context()))
    seconds.append(time.perf_counter() - begun)
outside = sorted({m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and m.__file__.startswith(sys.argv[2])})
json.dump({"results": results, "import_seconds": imported, "seconds": seconds,
           "modules": sorted({name.split(".")[0] for name in sys.modules}),
           "task_files": outside}, sys.stdout)
"""


def invoke_handler(task_dir, events, env_vars, layer, function_name="tr-intel-relay-dev"):
    """Call `handler.lambda_handler` of the unzipped package in a fresh
    interpreter that sees only the package, the runtime layer and the
    standard library (`-S`: no site-packages), like /var/task on Lambda."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{task_dir}:{layer}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "LAMBDA_TASK_ROOT": str(task_dir),
        "HTTPS_PROXY": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.update(env_vars)
    python = getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run([python, "-S", "-c", _RUNNER, function_name, str(task_dir)],
                          input=json.dumps(events), env=env, cwd=task_dir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1])
    # What the function wrote besides its result: its logs and EMF metrics.
    answer["stdout"], answer["stderr"] = "\n".join(lines[:-1]), done.stderr
    return answer


HOST_V1 = "abc123defg.execute-api.us-east-1.amazonaws.com"
HOST_URL = "abc123defg.lambda-url.us-east-1.on.aws"


def rest_v1_event(path, body=None, headers=None, method="POST", stage=STAGE):
    """An API Gateway REST (v1) proxy event, as `zappa deploy` wires it."""
    headers = {"Host": HOST_V1, "Content-Type": "application/json",
               "X-Forwarded-Proto": "https", **(headers or {})}
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}", "httpMethod": method, "stage": stage,
            "path": f"/{stage}{path}", "requestId": "req-v1", "accountId": ACCOUNT_ID,
            "identity": {"sourceIp": "198.51.100.7", "userAgent": "SecureX"},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": text, "isBase64Encoded": False,
    }


def function_url_v2_event(path, body=None, headers=None, method="POST"):
    """A Lambda function URL (payload v2.0) event."""
    headers = {"host": HOST_URL, "content-type": "application/json",
               "x-forwarded-proto": "https", **{k.lower(): v for k, v in (headers or {}).items()}}
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    encoded = base64.b64encode(text.encode()).decode() if text is not None else None
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abc123defg", "domainName": HOST_URL,
            "domainPrefix": "abc123defg", "requestId": "req-v2", "routeKey": "$default",
            "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": "SecureX"},
        },
        "body": encoded, "isBase64Encoded": encoded is not None,
    }


def response_json(result):
    """The JSON body of a handler result (v1 or v2 shape)."""
    body = result["body"]
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)
