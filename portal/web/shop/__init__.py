from portal.web.shop import privacy as _privacy  # noqa: F401  (its routes join the blueprint)
from portal.web.shop import survey as _survey  # noqa: F401  (its routes join the blueprint)
from portal.web.shop.routes import bp

__all__ = ["bp"]
