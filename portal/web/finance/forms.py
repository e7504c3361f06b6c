"""Finance forms."""

from __future__ import annotations

from flask_wtf import FlaskForm


class ActionForm(FlaskForm):
    """CSRF only: every finance button posts one of these."""
