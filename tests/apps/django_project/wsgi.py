"""WSGI entry point: ``django_project.wsgi:application``."""

import os

# Assigned, not setdefault: a stray value from the developer's shell must not
# point the tests at another project.
os.environ["DJANGO_SETTINGS_MODULE"] = "django_project.settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
