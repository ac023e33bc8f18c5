"""RP-CASES H: accounts, linking, sessions and secrets (ACC)."""

from __future__ import annotations

import json
from importlib import import_module

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from django_sso import signals
from django_sso.models import Identity, Source
from tests.fakeop import DROP, FakeNetworkAdapter, FakeOP
from tests.rejections import (
    assert_no_secrets,
    assert_rejected,
    begin,
    flow_secrets,
    local,
    log_text,
    pending_flows,
    provider_secrets,
    query_of,
)

User = get_user_model()


class UnverifiedLocalEmailAdapter(FakeNetworkAdapter):
    """A site whose local accounts never verified their e-mail (ACC-05)."""

    def is_local_email_verified(self, user):
        return False


def sign_in(browser: Client, op: FakeOP, slug: str = "honest", user: str = "alice", **data: str):
    """Run a sign-in in ``browser``; return the callback response and the flow's state."""
    url = begin(browser, slug, **data)
    return browser.get(local(op.authorize(url, user=user))), query_of(url)["state"]


def signed_in_user_id(browser: Client) -> int | None:
    value = browser.session.get("_auth_user_id")
    return int(value) if value is not None else None


@pytest.fixture
def carol(db):
    """An existing local account with a usable password and alice's e-mail address."""
    user = User.objects.create_user("carol", "alice@example.com", "carol-password")
    return user


# ---- ACC-01: the identity key is (source, sub) -----------------------------------------------


@pytest.mark.case("ACC-01")
def test_acc_01_same_sub_new_email_same_account(op, source):
    response, _ = sign_in(Client(), op)
    assert response.status_code == 303
    first = User.objects.get()

    op.users["alice"].update(email="alice.new@example.com", preferred_username="alice.new")
    browser = Client()
    response, _ = sign_in(browser, op)
    assert response.status_code == 303
    assert signed_in_user_id(browser) == first.pk
    assert User.objects.count() == 1
    assert User.objects.get().email == "alice.new@example.com"
    assert Identity.objects.get().subject == "alice-sub"


@pytest.mark.case("ACC-01")
@pytest.mark.parametrize("which", ["former", "current"])
def test_acc_01_new_sub_with_someone_elses_email_or_username(op, source, which):
    assert sign_in(Client(), op)[0].status_code == 303
    alice = User.objects.get()
    if which == "former":
        op.users["alice"]["email"] = "alice.new@example.com"
        assert sign_in(Client(), op)[0].status_code == 303
    op.users["mallory"] = {
        "sub": "mallory-sub",
        "email": "alice@example.com",
        "email_verified": True,
        "preferred_username": "alice",
    }
    browser = Client()
    response, _ = sign_in(browser, op, user="mallory")
    assert signed_in_user_id(browser) != alice.pk
    assert Identity.objects.filter(user=alice).count() == 1
    if which == "former":
        # The address is free again: a new account, never alice's.
        assert response.status_code == 303
        assert User.objects.get(pk=signed_in_user_id(browser)).username != "alice"
    else:
        assert response.status_code == 403


# ---- ACC-02: subjects differing in case -------------------------------------------------------


@pytest.mark.case("ACC-02")
def test_acc_02_subjects_differing_in_case_are_distinct(op, source):
    op.users["upper"] = {"sub": "AbC123", "email": "upper@example.com", "preferred_username": "upper"}
    op.users["lower"] = {"sub": "abc123", "email": "lower@example.com", "preferred_username": "lower"}
    first, second, again = Client(), Client(), Client()
    assert sign_in(first, op, user="upper")[0].status_code == 303
    assert sign_in(second, op, user="lower")[0].status_code == 303
    assert sign_in(again, op, user="upper")[0].status_code == 303
    assert signed_in_user_id(first) != signed_in_user_id(second)
    assert signed_in_user_id(again) == signed_in_user_id(first)
    assert sorted(Identity.objects.values_list("subject", flat=True)) == ["AbC123", "abc123"]
    assert Identity.objects.get(subject="abc123").user.username == "lower"
    assert not Identity.objects.filter(subject="ABC123").exists()


# ---- ACC-03: the same sub at two sources ------------------------------------------------------


@pytest.mark.case("ACC-03")
def test_acc_03_same_sub_two_sources_distinct(op, attacker_op, source, attacker_source):
    op.users["alice"].update(sub="12345", email="a@honest.example")
    attacker_op.users["alice"].update(sub="12345", email="a@attacker.example")
    honest, other = Client(), Client()
    assert sign_in(honest, op)[0].status_code == 303
    assert sign_in(other, attacker_op, "attacker")[0].status_code == 303
    assert signed_in_user_id(honest) != signed_in_user_id(other)
    assert sorted(Identity.objects.values_list("source__slug", "subject")) == [
        ("attacker", "12345"),
        ("honest", "12345"),
    ]


@pytest.mark.case("ACC-03")
def test_acc_03_same_sub_and_email_at_another_source_not_linked(
    op, attacker_op, source, attacker_source, sso_log
):
    op.users["alice"]["sub"] = "12345"
    attacker_op.users["alice"]["sub"] = "12345"
    honest = Client()
    assert sign_in(honest, op)[0].status_code == 303
    other = Client()
    response, state = sign_in(other, attacker_op, "attacker")
    assert_rejected(
        response,
        other,
        sso_log,
        status=403,
        code="sso.policy.email_in_use",
        ops=[attacker_op],
        state=state,
        token_calls=1,
        userinfo_calls=1,
    )
    assert Identity.objects.get().source == source


# ---- ACC-04: unverified e-mail of an existing user ----------------------------------------------


@pytest.mark.case("ACC-04")
@pytest.mark.parametrize(
    "verified",
    [False, DROP, "false", "true", 1, None],
    ids=["false", "absent", "str-false", "str-true", "one", "null"],
)
def test_acc_04_unverified_email_never_links(op, source, carol, sso_log, verified):
    source.link_existing_by_email = True
    source.email_trusted = True
    source.save()
    op.users["alice"]["email_verified"] = verified
    browser = Client()
    response, state = sign_in(browser, op)
    assert_rejected(
        response,
        browser,
        sso_log,
        status=403,
        code="sso.policy.email_in_use",
        ops=[op],
        state=state,
        token_calls=1,
        userinfo_calls=1,
    )
    carol.refresh_from_db()
    assert carol.has_usable_password()
    assert not Identity.objects.exists()
    assert User.objects.count() == 1


# ---- ACC-05: auto-link only from a provider trusted for e-mail ----------------------------------


@pytest.mark.case("ACC-05")
@pytest.mark.parametrize(
    ("link", "trusted", "domains", "code"),
    [
        (True, False, "", "sso.policy.email_in_use"),
        (False, True, "", "sso.policy.email_in_use"),
        (False, False, "", "sso.policy.email_in_use"),
        (True, True, "corp.example", "sso.policy.email_domain"),
    ],
    ids=["untrusted-provider", "linking-off", "defaults", "domain-not-allowed"],
)
def test_acc_05_verified_email_from_untrusted_source_refused(
    op, source, carol, sso_log, link, trusted, domains, code
):
    source.link_existing_by_email = link
    source.email_trusted = trusted
    source.allowed_email_domains = domains
    source.save()
    browser = Client()
    response, state = sign_in(browser, op)
    assert_rejected(
        response,
        browser,
        sso_log,
        status=403,
        code=code,
        ops=[op],
        state=state,
        token_calls=1,
        userinfo_calls=1,
    )
    assert not Identity.objects.exists()


@pytest.mark.case("ACC-05")
def test_acc_05_defaults_are_off():
    source = Source()
    assert source.link_existing_by_email is False
    assert source.email_trusted is False


@pytest.mark.case("ACC-05")
def test_acc_05_trusted_verified_allowed_domain_links(op, source, carol):
    source.link_existing_by_email = True
    source.email_trusted = True
    source.allowed_email_domains = "example.com"
    source.save()
    browser = Client()
    assert sign_in(browser, op)[0].status_code == 303
    assert signed_in_user_id(browser) == carol.pk
    carol.refresh_from_db()
    assert carol.has_usable_password()


@pytest.mark.case("ACC-05")
def test_acc_05_linking_into_unverified_local_account_kills_password(op, source, carol, settings):
    settings.DJANGO_SSO_ADAPTER = "tests.test_cases_accounts.UnverifiedLocalEmailAdapter"
    source.link_existing_by_email = True
    source.email_trusted = True
    source.save()
    browser = Client()
    assert sign_in(browser, op)[0].status_code == 303
    assert signed_in_user_id(browser) == carol.pk
    carol.refresh_from_db()
    assert not carol.has_usable_password()


# ---- ACC-06: starting a sign-in needs POST + CSRF -----------------------------------------------


@pytest.mark.case("ACC-06")
def test_acc_06_get_only_asks(op, source):
    browser = Client(enforce_csrf_checks=True)
    response = browser.get("/sso/honest/login/", {"next": "/shop/"})
    assert response.status_code == 200
    assert not response.has_header("Location")
    assert "django_sso/login_confirm.html" in [t.name for t in response.templates]
    assert 'method="post"' in response.content.decode()
    assert "csrfmiddlewaretoken" in response.content.decode()
    assert pending_flows(browser) == {}
    assert op.requests == []


@pytest.mark.case("ACC-06")
def test_acc_06_post_without_csrf_token_refused(op, source):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/sso/honest/login/")
    response = browser.post("/sso/honest/login/", {"next": "/shop/"})
    assert response.status_code == 403
    assert not response.has_header("Location")
    assert pending_flows(browser) == {}
    assert op.requests == []


@pytest.mark.case("ACC-06")
def test_acc_06_post_with_csrf_token_starts(op, source):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/sso/honest/login/")
    token = page.context["csrf_token"]
    response = browser.post("/sso/honest/login/", {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert response["Location"].startswith(op.url("/authorize"))


@pytest.mark.case("ACC-06")
def test_acc_06_no_get_reachable_connect_endpoint(client, source):
    # Connecting an identity to a signed-in account is not offered, so there is no URL to forge.
    assert client.get("/sso/honest/connect/").status_code == 404


# ---- ACC-07: session fixation -------------------------------------------------------------------


@pytest.mark.case("ACC-07")
def test_acc_07_session_rotated_and_cleaned_at_login(op, source):
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    store["planted_by_attacker"] = "value"
    store.save()
    planted = store.session_key
    victim = Client()
    victim.cookies[django_settings.SESSION_COOKIE_NAME] = planted
    begin(victim)  # another tab, left pending
    assert victim.session.session_key == planted
    response, _ = sign_in(victim, op, next="/shop/")
    assert response.status_code == 303
    assert response["Location"] == "/shop/"
    session = victim.session
    assert session.session_key != planted
    assert "_auth_user_id" in session
    assert "planted_by_attacker" not in session
    assert pending_flows(victim) == {}
    # The attacker's copy of the cookie is worth nothing.
    attacker = Client()
    attacker.cookies[django_settings.SESSION_COOKIE_NAME] = planted
    assert attacker.get("/whoami/").json()["authenticated"] is False


# ---- ACC-08: secrets never leak -----------------------------------------------------------------


@pytest.mark.case("ACC-08")
def test_acc_08_no_secret_in_logs_errors_str_or_admin(network, op, source, sso_log, monkeypatch):
    issued: list[str] = []
    real_send = network.send

    def send(request, **kwargs):
        response = real_send(request, **kwargs)
        if request.url == op.url("/token") and response.status_code == 200:
            body = json.loads(response.content)
            issued.extend(v for k, v in body.items() if k.endswith("token") and isinstance(v, str))
        return response

    monkeypatch.setattr(network, "send", send)
    errors = []

    def on_failure(sender, error, **kwargs):
        errors.append(error)

    signals.sign_in_failed.connect(on_failure)
    try:
        secrets: set[str] = set()
        op.scenario["token"] = {"refresh_token": "rt-refresh-secret-1234567890"}
        # Error paths once tokens exist: a wrong nonce, then a broken UserInfo; then a success.
        op.scenario["id_token"] = {"nonce": "not-the-flow-nonce"}
        first = Client()
        url = begin(first)
        secrets |= flow_secrets(first)
        assert first.get(local(op.authorize(url))).status_code == 400
        del op.scenario["id_token"]
        op.scenario["respond"] = {"/userinfo": (500, {"Content-Type": "text/plain"}, b"boom")}
        second = Client()
        url = begin(second)
        secrets |= flow_secrets(second)
        assert second.get(local(op.authorize(url))).status_code == 502
        del op.scenario["respond"]
        browser = Client()
        url = begin(browser)
        secrets |= flow_secrets(browser)
        assert browser.get(local(op.authorize(url))).status_code == 303
    finally:
        signals.sign_in_failed.disconnect(on_failure)

    assert len(issued) == 9
    secrets |= set(issued) | provider_secrets(op)
    assert_no_secrets(log_text(sso_log), secrets)

    assert len(errors) == 2
    for error in errors:
        chain = []
        exc = error
        while exc is not None:
            chain += [str(exc), repr(exc), repr(exc.args)]
            exc = exc.__cause__ or exc.__context__
        assert_no_secrets("\n".join(chain), secrets, "exception")

    identity = Identity.objects.select_related("user", "source").get()
    texts = [
        str(identity),
        repr(identity),
        str(source),
        repr(source),
        str(identity.user),
        repr(identity.user),
    ]
    texts.append(json.dumps(identity.claims))
    assert_no_secrets("\n".join(texts), secrets, "str/repr")

    admin = Client()
    admin.force_login(User.objects.create_superuser("admin", "admin@example.com", "admin-password"))
    pages = [
        "/admin/django_sso/source/",
        f"/admin/django_sso/source/{source.pk}/change/",
        "/admin/django_sso/identity/",
        f"/admin/django_sso/identity/{identity.pk}/change/",
        f"/admin/auth/user/{identity.user.pk}/change/",
    ]
    for page in pages:
        response = admin.get(page)
        assert response.status_code == 200, page
        assert_no_secrets(response.content.decode(), secrets, page)

    # At rest, the client secret is encrypted.
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM django_sso_source WHERE id = %s", [source.pk])
        (stored,) = cursor.fetchone()
    assert stored.startswith("fernet:")
    assert op.client_secret not in stored
