"""``{% sso_buttons %}``: one POST form with a CSRF token per enabled source, a safe ``next`` only."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.template import RequestContext, Template
from django.test import Client

from tests.conftest import make_source

FORM = re.compile(
    r'<form method="post" action="(?P<action>[^"]+)" class="sso-login">(?P<body>.*?)</form>', re.S
)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
NEXT = re.compile(r'<input type="hidden" name="next" value="([^"]*)">')


def render(rf, source: str = "{% sso_buttons %}", path: str = "/", **context: object) -> str:
    request = rf.get(path)
    return Template("{% load django_sso %}" + source).render(RequestContext(request, context))


@pytest.fixture
def sources(db, op, attacker_op):
    """Three enabled sources out of name order, and a disabled one."""
    make_source(op, "zeta", name="Zeta", display_order=1, issuer="https://op.example/zeta")
    make_source(op, "alpha", name="Alpha", display_order=2, issuer="https://op.example/alpha")
    make_source(
        op, "beta", name="Beta", display_order=1, issuer="https://op.example/beta", button_label="Go Beta"
    )
    make_source(attacker_op, "off", name="Off", display_order=0, enabled=False)


def test_one_post_form_per_enabled_source_in_display_order(rf, sources):
    html = render(rf)
    forms = list(FORM.finditer(html))
    assert [f["action"] for f in forms] == ["/sso/beta/login/", "/sso/zeta/login/", "/sso/alpha/login/"]
    assert "/sso/off/login/" not in html
    assert "Go Beta" in html
    assert "Sign in with Zeta" in html
    for form in forms:
        assert len(CSRF.findall(form["body"])) == 1
        assert 'type="submit"' in form["body"]


def test_no_sources_render_nothing(rf, db):
    assert render(rf).strip() == ""


def test_a_safe_next_from_the_query_is_carried(rf, sources):
    html = render(rf, path="/?next=/orders/%3Fpage%3D2")
    assert NEXT.findall(html) == ["/orders/?page=2"] * 3


def test_an_explicit_next_argument_wins(rf, sources):
    html = render(rf, '{% sso_buttons next="/account/" %}', path="/?next=/orders/")
    assert NEXT.findall(html) == ["/account/"] * 3


@pytest.mark.parametrize(
    "unsafe",
    [
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "https://evil.com/",
        "http://testserver.evil.com/",
        "javascript:alert(1)",
        "/%5Cevil.com",
        "/%09/evil.com",
        "/" + "a" * 3000,
    ],
)
def test_an_unsafe_next_is_dropped(rf, sources, unsafe):
    assert NEXT.findall(render(rf, path="/?next=" + quote(unsafe))) == []
    html = render(rf, "{% sso_buttons next=target %}", target=unsafe)
    assert NEXT.findall(html) == []
    assert "evil.com" not in html
    assert len(FORM.findall(html)) == 3


def test_next_and_labels_are_escaped(rf, db, op):
    make_source(op, "xss", name="<b>Bold</b>")
    html = render(rf, path="/?next=/search/%3Fq%3D%22%3E%3Cscript%3E")
    assert "<script>" not in html
    assert "<b>" not in html
    assert NEXT.findall(html) == ["/search/?q=&quot;&gt;&lt;script&gt;"]


def test_the_rendered_form_starts_a_sign_in_under_csrf_checks(db, op):
    make_source(op, "honest")
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/?next=/whoami/").content.decode()
    form = FORM.search(page)
    assert form is not None
    data = {"csrfmiddlewaretoken": CSRF.search(form["body"])[1], "next": NEXT.search(form["body"])[1]}
    response = browser.post(form["action"], data)
    assert response.status_code == 302
    assert response["Location"].startswith(op.url("/authorize"))
    # Without the token the same POST is refused.
    assert Client(enforce_csrf_checks=True).post(form["action"], {"next": "/whoami/"}).status_code == 403
