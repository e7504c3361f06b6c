"""Admin pages: staff accounts and roles (routing, SLA and calendars come next)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Regexp

from portal.db import get_session
from portal.db.models import StaffUser
from portal.domain.roles import ROLE_LABELS, ROLES
from portal.services.staff import StaffError, change_role, create_staff, set_active_by
from portal.web.staff.routes import staff_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _roles() -> list[SelectChoice]:
    return [SelectChoice(role, gettext(ROLE_LABELS[role])) for role in ROLES]


class NewStaffForm(FlaskForm):
    email = StringField(_l("Email"), validators=[DataRequired(), Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter an email address.")), Length(max=255)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=255)])
    role = SelectField(_l("Role"))
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(min=10, max=1024)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = _roles()


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = _roles()


class ActiveForm(FlaskForm):
    active = HiddenField(validators=[DataRequired()])


def _user(user_id: int) -> StaffUser:
    user = get_session().get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/staff", methods=["GET", "POST"])
@staff_required("admin")
def staff_list():
    form = NewStaffForm()
    status = 200
    if form.validate_on_submit():
        try:
            create_staff(get_session(), form.email.data, form.name.data, form.role.data, form.password.data)
        except StaffError as exc:
            form.email.errors.append(str(exc))
            status = 422
        else:
            flash(gettext("Account created."), "success")
            return redirect(url_for("admin.staff_list"), code=303)
    elif form.is_submitted():
        status = 422
    users = get_session().scalars(select(StaffUser).order_by(StaffUser.name)).all()
    return render_template("admin/staff.html", users=users, form=form, role_form=RoleForm, active_form=ActiveForm()), status


@bp.post("/staff/<int:user_id>/role")
@staff_required("admin")
def staff_role(user_id: int):
    user = _user(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        change_role(get_session(), current_user._get_current_object(), user, form.role.data)
    except StaffError as exc:
        flash(str(exc), "warning")
    else:
        flash(gettext("Role changed; their sessions have ended."), "success")
    return redirect(url_for("admin.staff_list"), code=303)


@bp.post("/staff/<int:user_id>/active")
@staff_required("admin")
def staff_active(user_id: int):
    user = _user(user_id)
    form = ActiveForm()
    if not form.validate_on_submit() or form.active.data not in ("0", "1"):
        abort(400)
    try:
        set_active_by(get_session(), current_user._get_current_object(), user, form.active.data == "1")
    except StaffError as exc:
        flash(str(exc), "warning")
    else:
        flash(gettext("Account updated."), "success")
    return redirect(url_for("admin.staff_list"), code=303)
