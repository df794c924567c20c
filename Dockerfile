# The engine image: the `aihp` CLI, the workers and (later) the API share it.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY workers ./workers
COPY pathways ./pathways
RUN pip install --no-cache-dir -e . && useradd --system --home /app aihp && mkdir -p var && chown aihp var
USER aihp
CMD ["aihp", "--help"]
