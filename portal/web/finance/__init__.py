from portal.web.finance.routes import bp

__all__ = ["bp"]
