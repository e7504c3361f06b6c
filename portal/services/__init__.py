"""Use cases. Each takes a session and plain values, and commits once."""


class NotFound(Exception):
    """The thing asked for does not exist (or is not visible to the caller)."""


class Conflict(Exception):
    """The thing changed since the caller last saw it (stale form, double submit)."""
