"""Serve the relay over real HTTP on loopback, for the demo and the bench.

`python -m tests.relay_server PORT` runs it in this process; `spawn(env)`
starts it as a separate process (so its CPU time can be measured alone).
"""
import os
import socket
import subprocess
import sys
import time

from tests.ctim_check import ROOT


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(env):
    """Start the relay in a child process; returns (process, base URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.relay_server", str(port)], cwd=ROOT,
        env=dict(os.environ, **env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode())
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the relay did not start")


def cpu_seconds(pid):
    """User + system CPU time of process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main():
    import logging

    from werkzeug.serving import make_server

    from app import app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()
