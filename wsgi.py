"""The WSGI entry point for a WSGI server, e.g. ``waitress-serve wsgi:app`` from the project folder.

Configuration comes from ``PORTAL_*`` environment variables (see README).
"""

from portal import create_app

app = create_app()
