"""Password forms for staff: change (signed in), ask for a link, set a new one through a link."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.services.staff import MIN_PASSWORD
from portal.web.admin.forms import AdminForm


class NewPasswordForm(AdminForm):
    password = PasswordField(
        _l("New password"),
        description=_l("At least %(n)d characters.", n=MIN_PASSWORD),
        validators=[DataRequired(), Length(min=MIN_PASSWORD, max=1024)],
    )
    confirm = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("password", message=_l("Type the same new password twice."))],
    )


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1024)])


class ForgotPasswordForm(AdminForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Length(max=255)])
