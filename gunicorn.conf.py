"""gunicorn settings of the container image and of `make serve` (one command, one file).

The relay waits on providers most of the time, so each worker runs threads
(`gthread`): RELAY_WORKERS processes x RELAY_THREADS requests in flight.
"""
import os

from api.settings import Settings

_settings = Settings.from_env()

bind = f"{_settings.get_str('RELAY_HOST', '0.0.0.0')}:{_settings.get_int('PORT', 9090)}"
worker_class = "gthread"
workers = _settings.get_int("RELAY_WORKERS", 2, maximum=64)
threads = _settings.get_int("RELAY_THREADS", 16, maximum=256)
# SIGTERM: stop accepting, let in-flight requests end (the relay answers by
# RELAY_DEADLINE whatever upstream does), then exit.
graceful_timeout = int(_settings.deadline) + 5
# A worker silent this long is restarted (gthread workers beat while they wait).
timeout = graceful_timeout + 5
keepalive = 5
# The heartbeat file on tmpfs: a container's overlay filesystem can stall it.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No `gunicornc` control socket: nothing may steer the server from inside.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = "info"
# Path without its query string, and no header (Authorization, Referer, ...).
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
