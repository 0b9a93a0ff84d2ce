"""The admin web console under ``/console``: server-rendered pages over the same services as the API.

Sign-in with a tenant user's console password (or, for the platform view, a platform key) opens
a server-side session; every form carries a CSRF token; every change goes through the service
call the matching API endpoint makes, so it is role-gated and audited the same way.
"""

from fastapi import APIRouter

from tenantgate.api.console._control_pages import router as _control
from tenantgate.api.console._login_routes import router as _login
from tenantgate.api.console._platform_pages import router as _platform
from tenantgate.api.console._view_pages import router as _views

__all__ = ["router"]

router = APIRouter()
router.include_router(_login)
router.include_router(_views)
router.include_router(_control)
router.include_router(_platform)
