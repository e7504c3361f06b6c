from portal.web.warehouse.routes import bp

__all__ = ["bp"]
