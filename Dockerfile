# aidbox-sync service image: slim, non-root, with a health check on the SDK's /health route.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SYNC_MANIFEST_DIR=/srv/manifest \
    AIO_HOST=0.0.0.0 \
    AIO_PORT=8090

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY manifest ./manifest
RUN pip install . && useradd --system --uid 10001 --no-create-home sync

USER sync
EXPOSE 8090
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('AIO_PORT','8090'), timeout=2)"
CMD ["aidbox-sync"]
