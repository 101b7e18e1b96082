"""Persistence: SQLAlchemy 2 models, repositories and Alembic migrations."""

from opsmith.store.database import Database

__all__ = ["Database"]
