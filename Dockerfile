# The relay as a container beside your MISP: gunicorn on PORT (9090), as `make serve` runs it.
# README "Deploy as a container": docker build -t tr-intel-relay . && docker run -dp 9090:9090 ...
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=9090

WORKDIR /app
COPY requirements-pins.txt requirements-container.txt ./
RUN pip install -r requirements-container.txt
# Root owns the code; the server runs as an unprivileged user that cannot change it.
COPY app.py gunicorn.conf.py ./
COPY api ./api
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin relay
USER 10001

EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "api.tools.healthcheck"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]
