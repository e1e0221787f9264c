"""Where events live: turns :class:`~closedloop.settings.Settings` into an event store."""

from closedloop.store.environment import application_env, ensure_database_ready

__all__ = ["application_env", "ensure_database_ready"]
