# The engine image: the `aihp` CLI, the API and the Celery workers share it.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY workers ./workers
COPY api ./api
COPY lab_feed ./lab_feed
COPY pathways ./pathways
RUN pip install --no-cache-dir -e . && useradd --system --home /app aihp && mkdir -p var && chown aihp var
USER aihp
CMD ["aihp", "--help"]
