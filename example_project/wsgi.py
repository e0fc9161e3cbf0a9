import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

from example_project.middleware import RequestGuard

# The guard answers requests Django itself would turn into a 500 (see example_project.middleware).
application = RequestGuard(get_wsgi_application())
