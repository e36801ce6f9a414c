"""The store's schema migrations (Alembic): ``versions/`` holds one module per schema change.

:func:`judge.api.store.Store.create_schema` applies them at startup, and ``canary-judge db
upgrade`` on demand; ``env.py`` runs them on the connection the store hands it (inside the
store's transaction, which holds the lock that keeps two replicas from migrating at once).
"""
