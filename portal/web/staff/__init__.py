from portal.web.staff import privacy as _privacy  # noqa: F401  (its routes join the blueprint)
from portal.web.staff import products as _products  # noqa: F401  (its routes join the blueprint)
from portal.web.staff.routes import bp

__all__ = ["bp"]
