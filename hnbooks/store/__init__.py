"""The SQLite store: the contract between `hnbooks-score`, `hnbooks-tui` and the `hnbooks` CLI."""

from hnbooks.store.db import DEFAULT_DB_PATH, Store, StoreError

__all__ = ["DEFAULT_DB_PATH", "Store", "StoreError"]
