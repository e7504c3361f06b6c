"""Use cases. Each takes a session and plain values, and commits once.

Business-rule failures are ``portal.domain.errors`` (re-exported here for callers).
"""

from portal.domain.errors import Conflict, DomainError, InvalidInput, NotFound, NotPermitted

__all__ = ["Conflict", "DomainError", "InvalidInput", "NotFound", "NotPermitted"]
