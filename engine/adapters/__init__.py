"""Adapters: the only place files, SQLAlchemy, SMTP and Redis are touched."""
