from portal.web.admin import jobs as _jobs  # noqa: F401  (its routes join the blueprint)
from portal.web.admin import policy as _policy  # noqa: F401  (its routes join the blueprint)
from portal.web.admin import reasons as _reasons  # noqa: F401  (its routes join the blueprint)
from portal.web.admin import wear as _wear  # noqa: F401  (its routes join the blueprint)
from portal.web.admin.routes import bp

__all__ = ["bp"]
