# closedloop API image: `docker build -t closedloop .`, or `docker compose up` (docker-compose.yml).
# Configuration is CLOSEDLOOP_* environment variables only (see README, "Configuration").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns the working directory (the default SQLite file ./closedloop.db
# lands there when CLOSEDLOOP_DATABASE_URL is unset).
RUN groupadd --system --gid 10001 closedloop \
    && useradd --system --uid 10001 --gid closedloop --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin closedloop

WORKDIR /app

# Only what `pip install .` needs: metadata, the readme it names, the package sources.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && rm -rf /app/src /app/build /app/*.egg-info \
    && chown closedloop:closedloop /app

USER closedloop:closedloop

EXPOSE 8000

# No curl in slim images: ask /health with the standard library (non-2xx raises, exit 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["closedloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
