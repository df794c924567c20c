# The engine image: the `aihp` CLI, the API and the Celery workers share it.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Graphviz lays out the pathway diagram (`dot`); the slim image has no time zone database, so
# the `tzdata` package (a dependency) gives the lab feeds' site time zones.
RUN apt-get update && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY cli ./cli
COPY simulation ./simulation
COPY workers ./workers
COPY api ./api
COPY lab_feed ./lab_feed
COPY pathways ./pathways
RUN pip install --no-cache-dir -e . && useradd --system --home /app aihp && mkdir -p var && chown aihp var
USER aihp
CMD ["aihp", "--help"]
