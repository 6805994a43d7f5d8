"""A one-file Django project with coatcheck as its session engine and django.contrib.auth login.

Run it (from the repository root, with ``pip install 'coatcheck[django]'``)::

    python examples/django/app.py runserver --noreload 127.0.0.1:8000

or under a WSGI server: ``gunicorn --chdir examples/django app:application``.
Sessions go to SQLite in ``examples/django/.demo/`` unless ``COATCHECK_STORE_URL`` says otherwise
(e.g. ``redis://127.0.0.1:6379/0``); users to ``.demo/users.sqlite3`` (``DEMO_DATABASE``).
The database is migrated and the demo user ``ada`` (password ``lovelace``) created at start-up.

- ``GET /``: who is logged in and the visit counter; touches no session when there is none.
- ``POST /visit``: counts a visit in the session (creating it).
- ``GET /login``: a form; ``POST /login``: ``django.contrib.auth.login`` (a new session ID).
- ``POST /logout``: ``django.contrib.auth.logout`` (the session is deleted in the store).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
DEMO = HERE / ".demo"

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-a-secret-change-me"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "coatcheck.integrations.django",  # for `app.py coatcheck_purge`
    ],
    MIDDLEWARE=[
        "coatcheck.integrations.django.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_DATABASE", str(DEMO / "users.sqlite3")),
        }
    },
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    SESSION_ENGINE="coatcheck.integrations.django",
    COATCHECK_STORE_URL=os.environ.get(
        "COATCHECK_STORE_URL", f"sqlite:///{DEMO / 'sessions.sqlite3'}"
    ),
    SESSION_COOKIE_SECURE=False,  # plain http on localhost; True behind HTTPS
    SESSION_COOKIE_AGE=30 * 60,
    USE_TZ=True,
)
DEMO.mkdir(exist_ok=True)
django.setup()

from django.contrib import auth  # noqa: E402 - after the settings
from django.contrib.auth.models import User  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command, execute_from_command_line  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"user": user, "visits": request.session.get("visits", 0)})


@require_POST
def visit(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"]})


def login(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        user = auth.authenticate(
            request,
            username=request.POST.get("username", ""),
            password=request.POST.get("password", ""),
        )
        if user is None:
            return JsonResponse({"error": "wrong username or password"}, status=403)
        auth.login(request, user)  # cycle_key: a new session ID, the old record deleted
        return JsonResponse({"user": user.get_username()})
    token = get_token(request)
    return HttpResponse(
        '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
        f'value="{token}"><input name="username"><input name="password" type="password">'
        "<button>Log in</button></form>"
    )


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth.logout(request)  # flush: the session is deleted from the store
    return JsonResponse({"user": None})


urlpatterns = [
    path("", home),
    path("visit", visit),
    path("login", login),
    path("logout", logout),
]


def prepare() -> None:
    """Create the users table and the demo user (idempotent)."""
    call_command("migrate", verbosity=0)
    if not User.objects.filter(username="ada").exists():
        User.objects.create_user("ada", password="lovelace")  # noqa: S106 - the demo user


prepare()
application = WSGIHandler()

if __name__ == "__main__":
    execute_from_command_line(sys.argv)
