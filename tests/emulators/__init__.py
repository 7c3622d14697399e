"""Provider emulators: real HTTP servers on loopback speaking each provider's
wire format, with knobs for latency, rate limits and failures.

Each module `tests.emulators.<provider>` defines:
- `ENV_VAR`: the relay setting that points at the provider's base URL;
- `BASE_PATH`: path appended to the emulator's root to form that base URL;
- `CLAIMS`: JWT claims the emulator accepts (e.g. `{"key": "..."}`);
- `create_app(emulator)`: a Flask app that serves the provider's API and
  calls `emulator.hit()` on every upstream request it answers;
- `observables(n)`: n distinct observables it knows (for demo and bench).
"""
import importlib

NAMES = ("misp", "pulsedive", "otx", "cyberprotect")


def load(name):
    """The emulator module for provider `name`, or None when it has none yet."""
    try:
        return importlib.import_module(f"tests.emulators.{name}")
    except ImportError:
        return None
