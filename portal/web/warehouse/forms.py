"""Warehouse forms."""

from __future__ import annotations

from flask_wtf import FlaskForm


class ReceiveForm(FlaskForm):
    """CSRF and the status the page showed; the per-line fields are read from the form by name."""
