from portal.web.insights.routes import bp

__all__ = ["bp"]
