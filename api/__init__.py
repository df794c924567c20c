"""The HTTP API (FastAPI): routers per resource, shared dependencies, problem+json errors."""
