from portal.web.account.routes import bp

__all__ = ["bp"]
