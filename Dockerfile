# The image of the API and of the workers (docker-compose.yml); Elasticsearch, Kibana and Redis use
# their official images.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Audio decoding (ffmpeg: m4a and other containers libsndfile cannot read) and the speech samples of the
# tests and demo.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng sox libsndfile1 ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN pip install .

RUN useradd --create-home --uid 1000 app \
    && mkdir -p /data /home/app/.cache/huggingface \
    && chown app:app /data /home/app/.cache/huggingface
USER app
ENV MMSEARCH_DATA_DIR=/data \
    MMSEARCH_API_HOST=0.0.0.0 \
    MMSEARCH_API_PORT=8000

EXPOSE 8000
# The API under gunicorn, on MMSEARCH_API_HOST:MMSEARCH_API_PORT; `mmsearch worker` runs a worker.
CMD ["mmsearch", "serve"]
