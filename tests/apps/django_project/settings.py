"""Settings for the Django smoke-test project: production-like (DEBUG off),
no database, CSRF middleware on (the POST views are exempted)."""

SECRET_KEY = "aserve-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

ROOT_URLCONF = "django_project.urls"
INSTALLED_APPS = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
DATABASES = {}
USE_TZ = True
USE_I18N = False

# With DEBUG off Django would only mail tracebacks to ADMINS; send them to
# stderr instead so they land in aserve's error log for failing tests.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
