from portal.web.staff.routes import bp, login_manager

__all__ = ["bp", "login_manager"]
