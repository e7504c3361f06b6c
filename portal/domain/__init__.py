"""Pure domain logic: no Flask, no SQLAlchemy, no I/O.

Nothing in this package imports from anything else in ``portal``.
"""
