"""CSRF through the Flask integration: the rules of tests/test_csrf.py (unsafe requests must come
from the site itself and, in token mode, carry the session's token; reads are never checked),
configured from ``app.config`` and enforced before any view runs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import flask
import flask_login
import httpx
import pytest
from flask.testing import FlaskClient

from coatcheck import ConfigError
from coatcheck.events import SessionEvent
from coatcheck.integrations.flask import CsrfRefused, Session, current_session
from coatcheck.stores import MemoryStore

from .servers import serve_wsgi

HOST = "shop.example"


class User(flask_login.UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def make_app(**config: Any) -> flask.Flask:
    """A shop with a page that embeds the token, a transfer, a webhook and two logins."""
    app = flask.Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="for Flask-Login", COATCHECK_STORE=MemoryStore())
    app.config.update(config)
    Session(app)
    manager = flask_login.LoginManager(app)
    manager.user_loader(User)

    @app.get("/form")
    def form_page() -> str:
        return current_session().csrf_token()

    @app.get("/page")
    def page() -> str:
        messages = flask.get_flashed_messages()  # empties the session
        return flask.render_template_string("{{ csrf_token() }}", messages=messages)

    @app.post("/flash")
    def flash() -> str:
        flask.flash("saved")
        return "ok"

    @app.post("/transfer")
    @app.post("/hooks/pay")
    def transfer() -> dict[str, Any]:
        raw = flask.request.get_data(as_text=True)  # the body still reaches the view
        flask.session["paid"] = flask.request.form.get("amount", "json")
        return {"paid": flask.session["paid"], "raw": raw}

    @app.post("/login")
    def login() -> str:
        current_session().login("alice")
        return "ok"

    @app.post("/flask-login")
    def flask_login_view() -> str:
        flask_login.login_user(User("bob"))
        return "ok"

    return app


@pytest.fixture
def make_client() -> Iterator[Any]:
    opened: list[FlaskClient] = []

    def make(**config: Any) -> FlaskClient:
        client = make_app(SERVER_NAME=HOST, **config).test_client()  # requests go to HOST
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


# -- origin checks (the default) ---------------------------------------------------------------


def test_cross_site_reads_are_not_checked(make_client: Any) -> None:
    client = make_client()
    assert client.get("/form", headers={"Origin": "https://evil.example"}).status_code == 200


def test_trusted_origins_and_exempt_paths(make_client: Any) -> None:
    client = make_client(
        COATCHECK_TRUSTED_ORIGINS=["https://app.example"],
        COATCHECK_CSRF_EXEMPT=["/hooks/"],
        COATCHECK_CSRF="token",
    )
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert client.post("/hooks/pay", headers=evil).status_code == 200
    trusted = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
    token = client.get("/form").text
    response = client.post("/transfer", headers={**trusted, "X-CSRF-Token": token})
    assert response.status_code == 200


def test_an_origin_with_another_scheme_is_refused(make_client: Any) -> None:
    client = make_client()
    refused = client.post("/transfer", data={"amount": "1"}, headers={"Origin": f"https://{HOST}"})
    assert refused.status_code == 403


def test_a_plain_http_server_refuses_its_own_host_under_https() -> None:
    """Over real HTTP (wsgiref): ``Origin: https://<host:port>`` is another origin than the
    plain-http site on that host and port."""
    with serve_wsgi(make_app()) as url, httpx.Client(base_url=url) as http:
        netloc = url.removeprefix("http://")
        https = http.post(
            "/transfer", data={"amount": "1"}, headers={"Origin": f"https://{netloc}"}
        )
        assert https.status_code == 403
        same = http.post("/transfer", data={"amount": "2"}, headers={"Origin": f"http://{netloc}"})
        assert same.json()["paid"] == "2"


@pytest.mark.parametrize(
    ("trusted_proxies", "origin", "status"),
    [
        (["127.0.0.0/8"], "https", 200),  # the proxy terminated TLS: the browser used https
        (["127.0.0.0/8"], "http", 403),
        ([], "https", 403),  # a header anyone can send, unless it comes from a trusted proxy
        (["10.0.0.0/8"], "https", 403),
    ],
    ids=["trusted-https", "trusted-but-http-origin", "no-trusted-proxies", "peer-not-trusted"],
)
def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(
    trusted_proxies: list[str], origin: str, status: int
) -> None:
    app = make_app(COATCHECK_TRUSTED_PROXIES=trusted_proxies)
    with serve_wsgi(app) as url, httpx.Client(base_url=url) as http:
        netloc = url.removeprefix("http://")
        headers = {"Origin": f"{origin}://{netloc}", "X-Forwarded-Proto": "https"}
        assert http.post("/transfer", headers=headers).status_code == status


def test_csrf_off_checks_nothing(make_client: Any) -> None:
    client = make_client(COATCHECK_CSRF="off")
    response = client.post("/transfer", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200


# -- token mode ---------------------------------------------------------------------------------


def test_a_form_carrying_the_token_passes_and_its_body_reaches_the_view(make_client: Any) -> None:
    client = make_client(COATCHECK_CSRF="token")
    token = client.get("/form").text
    response = client.post("/transfer", data={"csrf_token": token, "amount": "5"})
    assert response.status_code == 200
    assert response.json["paid"] == "5"
    assert "amount=5" in response.json["raw"]  # request.get_data() and request.form both work


def test_the_token_may_come_in_a_header(make_client: Any) -> None:
    client = make_client(COATCHECK_CSRF="token")
    token = client.get("/form").text
    assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 200


def test_header_and_field_names_are_configurable(make_client: Any) -> None:
    client = make_client(
        COATCHECK_CSRF="token", COATCHECK_CSRF_HEADER="X-XSRF", COATCHECK_CSRF_FIELD="_xsrf"
    )
    token = client.get("/form").text
    assert client.post("/transfer", headers={"X-XSRF": token}).status_code == 200
    assert client.post("/transfer", data={"_xsrf": token}).status_code == 200
    assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 403


def test_every_response_masks_the_token_afresh(make_client: Any) -> None:
    client = make_client(COATCHECK_CSRF="token")
    first, second = client.get("/form").text, client.get("/form").text
    assert first != second
    for token in (first, second):
        assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 200


@pytest.mark.parametrize("token", [None, "", "garbage", "A" * 86])
def test_a_missing_empty_or_forged_token_is_refused(make_client: Any, token: str | None) -> None:
    client = make_client(COATCHECK_CSRF="token")
    client.get("/form")  # the session has a token; the request does not carry it
    data = {"amount": "100"} if token is None else {"amount": "100", "csrf_token": token}
    assert client.post("/transfer", data=data).status_code == 403


def test_another_sessions_token_is_refused(make_client: Any) -> None:
    attacker, victim = make_client(COATCHECK_CSRF="token"), make_client(COATCHECK_CSRF="token")
    stolen = attacker.get("/form").text
    victim.get("/form")
    assert victim.post("/transfer", data={"csrf_token": stolen}).status_code == 403


def test_a_request_without_a_session_has_no_token_to_match(make_client: Any) -> None:
    other = make_client(COATCHECK_CSRF="token")
    token = other.get("/form").text
    client = make_client(COATCHECK_CSRF="token")
    assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 403


@pytest.mark.parametrize("login", ["/login", "/flask-login"])
def test_login_renews_the_token(make_client: Any, login: str) -> None:
    """Through ``current_session().login`` and through Flask-Login's ``login_user`` alike."""
    client = make_client(COATCHECK_CSRF="token")
    before = client.get("/form").text
    assert client.post(login, headers={"X-CSRF-Token": before}).status_code == 200
    assert client.post("/transfer", headers={"X-CSRF-Token": before}).status_code == 403
    after = client.get("/form").text
    assert client.post("/transfer", headers={"X-CSRF-Token": after}).status_code == 200


def test_a_token_in_a_multipart_form_is_found(make_client: Any) -> None:
    client = make_client(COATCHECK_CSRF="token")
    token = client.get("/form").text
    data = {"csrf_token": token, "amount": "7", "f": (io.BytesIO(b"x"), "a.txt")}
    response = client.post("/transfer", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert response.json["paid"] == "7"


def test_templates_embed_the_token_and_an_emptied_session_keeps_it(make_client: Any) -> None:
    """``{{ csrf_token() }}`` is a Jinja global; a page that pops the last flash message (so
    the session has no data left) must not destroy the token it has just rendered."""
    client = make_client(COATCHECK_CSRF="token")
    token = client.get("/page").text
    assert client.post("/flash", data={"csrf_token": token}).status_code == 200
    rendered = client.get("/page").text
    assert client.post("/transfer", data={"csrf_token": rendered}).status_code == 200


def test_a_refusal_is_an_audit_event_and_an_error_the_app_can_handle(make_client: Any) -> None:
    events: list[SessionEvent] = []
    client = make_client(COATCHECK_CSRF="token", COATCHECK_ON_EVENT=events.append)
    client.application.register_error_handler(
        CsrfRefused, lambda error: (f"refused: {error.reason}", 403)
    )
    client.get("/form")
    response = client.post("/transfer", data={"csrf_token": "forged"})
    assert (response.status_code, response.text) == (403, "refused: wrong CSRF token")
    assert [(e.kind, e.reason) for e in events][-1] == ("rejected", "csrf: wrong CSRF token")


def test_bad_csrf_options_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="csrf must be"):
        make_app(COATCHECK_CSRF="on")
    with pytest.raises(ConfigError, match="csrf_exempt"):
        make_app(COATCHECK_CSRF_EXEMPT=["hooks"])


def test_token_mode_is_refused_beside_flask_wtf_csrf_protect() -> None:
    """Flask-WTF's CSRFProtect registers itself as ``app.extensions["csrf"]`` and checks its own
    token: with both, one of the two would refuse every form the other's token is in."""
    app = flask.Flask(__name__)
    app.config.update(COATCHECK_STORE=MemoryStore(), COATCHECK_CSRF="token")
    app.extensions["csrf"] = object()  # what CSRFProtect(app) leaves
    with pytest.raises(RuntimeError, match="CSRFProtect"):
        Session(app)
