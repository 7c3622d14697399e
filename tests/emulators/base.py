"""A threaded loopback HTTP server hosting one provider emulator."""
import logging
import threading
import time

from werkzeug.serving import make_server

# The emulators' access log would drown test and demo output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)


class Emulator:
    """Runs `module.create_app(self)` on 127.0.0.1 in a background thread.

    Knobs, all mutable between requests:
    - `latency`: seconds slept before answering each upstream call;
    - `fail`: maps a value (or "*") to an HTTP status the emulator answers
      instead of its data, for error-path tests;
    - `rate_limit`: provider-specific; see each emulator.
    `calls` counts upstream requests answered since `reset()`.
    """

    def __init__(self, module, port=0):
        self.module = module
        self.latency = 0.0
        self.fail = {}
        self.rate_limit = None
        self.options = {}
        self.calls = 0
        self.requests = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", port, module.create_app(self),
                                   threaded=True)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True)

    @property
    def root(self):
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def url(self):
        """The base URL the relay's `ENV_VAR` should hold."""
        return self.root + getattr(self.module, "BASE_PATH", "")

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def reset(self):
        with self._lock:
            self.latency = 0.0
            self.fail = {}
            self.rate_limit = None
            self.options = {}
            self.calls = 0
            self.requests = []

    def hit(self, request=None):
        """Count one upstream call, record it, and apply the latency knob."""
        with self._lock:
            self.calls += 1
            if request is not None:
                self.requests.append({
                    "method": request.method,
                    "path": request.path,
                    "args": request.args.to_dict(flat=False),
                    "headers": dict(request.headers),
                    "json": request.get_json(silent=True),
                })
        if self.latency:
            time.sleep(self.latency)

    def failure_for(self, value):
        """The HTTP status configured to fail `value`, if any."""
        return self.fail.get(value, self.fail.get("*"))


def start(name):
    """Start the emulator of provider `name` (see tests.emulators)."""
    from tests.emulators import load

    module = load(name)
    if module is None:
        raise LookupError(f"no emulator for provider '{name}'")
    return Emulator(module).start()


def start_all():
    """Start every provider's emulator; returns ({name: Emulator}, relay env)."""
    from tests.emulators import NAMES, load

    emulators = {}
    env = {}
    for name in NAMES:
        module = load(name)
        if module is not None:
            emulators[name] = start(name)
            env[module.ENV_VAR] = emulators[name].url
    return emulators, env
