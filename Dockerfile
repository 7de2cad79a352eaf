# One image for every citybase service; the command picks the service:
#   docker build -t citybase:0.1.0 .
#   docker run --rm -p 8000:8000 -e CITYBASE_DATABASE_URL=... -e CITYBASE_BUS_URL=kafka://... \
#     citybase:0.1.0 serve ingest
# `citybase migrate` runs the migrations once (the compose `migrate` service, the k8s Job), so the
# services start with CITYBASE_MIGRATE_ON_START=false.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The catalog reads contracts/events from the source tree, so the image keeps the tree and installs
# it in place (editable) rather than into site-packages.
COPY pyproject.toml README.md ./
COPY services ./services
COPY citybase ./citybase
COPY contracts ./contracts
RUN pip install -e "." \
    && useradd --system --uid 10001 --gid 0 --home-dir /var/lib/citybase --create-home citybase

USER 10001
ENV CITYBASE_HOST=0.0.0.0 \
    CITYBASE_PORT=8000 \
    CITYBASE_DATA_DIR=/var/lib/citybase \
    CITYBASE_MIGRATE_ON_START=false
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["citybase"]
CMD ["serve", "catalog"]
