"""Authentication backends: ``SSOBackend`` turns validated provider claims into a local user."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from django_sso import roles, signals
from django_sso.adapter import get_adapter
from django_sso.exceptions import PolicyRefused
from django_sso.models import Grant, Identity, Source

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.http import HttpRequest

logger = logging.getLogger("django_sso")
_FIRST_SIGN_IN_ATTEMPTS = 3


class _LostRace(Exception):
    """Another request provisioned this identity while this one was doing the same."""


def email_of(claims: dict[str, Any]) -> str | None:
    """Return the ``email`` claim when it is a plausible address."""
    email = claims.get("email")
    if isinstance(email, str) and "@" in email.strip():
        return email.strip()
    return None


def email_is_verified(claims: dict[str, Any]) -> bool:
    """Return True only for the JSON boolean ``true`` (IDT-15: the string "true" is not)."""
    return claims.get("email_verified") is True


class SSOBackend(ModelBackend):
    """Sign in with claims a source vouched for; create or link the user by the source's policy.

    Override the hooks (named as in Django and mozilla-django-oidc) to change provisioning:
    :meth:`filter_users_by_claims`, :meth:`create_user`, :meth:`update_user`,
    :meth:`configure_user`, :meth:`user_can_authenticate`, :meth:`sync_roles`, and for bearer tokens
    :meth:`bearer_user`.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        sso_source: Source | None = None,
        sso_claims: dict[str, Any] | None = None,
        sso_token: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        """Return the user for (source, subject), creating or linking one when the source allows.

        The subject is ``sub`` (``tid:sub`` for a multi-tenant Entra ID source).

        ``sso_token`` is the token response; the role mapping may read grants from it. Raise
        :class:`PolicyRefused` with a reason code when the site's policy says no; nothing is
        written in that case: provisioning and the role mapping run in one transaction.
        """
        if sso_source is None or sso_claims is None:
            return None
        self.check_policy(request, sso_source, sso_claims)
        # One transaction, no savepoints. Two first sign-ins of one person at once: the loser's
        # insert fails on the unique (source, subject) or username, its work rolls back, and the
        # retry finds the winner's identity (or, for a taken username, picks a free one).
        for attempt in range(_FIRST_SIGN_IN_ATTEMPTS):
            self.careful_usernames = attempt > 0
            try:
                with transaction.atomic():
                    user, identity, created, added, removed = self._sign_in(
                        request, sso_source, sso_claims, sso_token or {}
                    )
                break
            except (IntegrityError, _LostRace):
                if attempt == _FIRST_SIGN_IN_ATTEMPTS - 1:
                    raise PolicyRefused("sso.policy.provisioning_conflict") from None
        signals.roles_synced.send(
            sender=Source, request=request, user=user, source=sso_source, added=added, removed=removed
        )
        # The view reads these to send sign_in_succeeded without another query.
        user.sso_identity, user.sso_identity_created = identity, created
        return user

    def _sign_in(
        self, request: HttpRequest | None, source: Source, claims: dict[str, Any], token: dict[str, Any]
    ) -> tuple[AbstractBaseUser, Identity, bool, Any, Any]:
        identity = (
            Identity.objects.select_related("user")
            .annotate(holds_grants=Exists(Grant.objects.filter(user=OuterRef("user_id"), source=source)))
            .filter(source=source, subject=source.identity_subject(claims))
            .first()
        )
        created = identity is None
        if identity is None:
            identity = self.first_sign_in(request, source, claims)
            identity.holds_grants = False
        else:
            identity.source = source  # the one in hand: reading identity.source costs no query
            self.update_user(identity.user, source, claims)
            identity.update_claims(get_adapter().stored_claims(source, claims))
        user = identity.user
        if not self.user_can_authenticate(user):
            raise PolicyRefused("sso.policy.inactive_user")
        user.sso_holds_grants = identity.holds_grants
        added, removed = self.sync_roles(request, user, source, claims, token)
        return user, identity, created, added, removed

    def bearer_user(
        self, request: HttpRequest | None, source: Source, subject: str, claims: dict[str, Any]
    ) -> AbstractBaseUser | None:
        """Return the user a bearer token of ``source`` speaks for, or None to refuse the token.

        One query: the identity (source, ``sub``) with its user. An unknown subject gets a user
        only when the source creates users from bearer tokens, through :meth:`first_sign_in` with
        the same policy as a first sign-in (a write on first sight only); an inactive user is
        refused. Neither the user nor the identity is updated: nothing is written per request.
        """
        try:
            identity = Identity.objects.select_related("user").get(source_id=source.pk, subject=subject)
        except Identity.DoesNotExist:
            identity = None
        if identity is None:
            if not source.bearer_create_users:
                return None
            self.check_policy(request, source, claims)
            identity = self.first_sign_in(request, source, {**claims, "sub": subject})
        user = identity.user
        return user if self.user_can_authenticate(user) else None

    def sync_roles(
        self,
        request: HttpRequest | None,
        user: AbstractBaseUser,
        source: Source,
        claims: dict[str, Any],
        token: dict[str, Any],
    ) -> tuple[roles.RoleChanges, roles.RoleChanges]:
        """Apply the source's role mapping (:func:`django_sso.roles.sync`); return (added, removed)."""
        return roles.sync(
            user, source, claims, token, request=request, holds_grants=getattr(user, "sso_holds_grants", True)
        )

    def check_policy(self, request: HttpRequest | None, source: Source, claims: dict[str, Any]) -> None:
        """Refuse claims the source's policy or the adapter does not allow."""
        domains = source.email_domain_list
        if domains:
            email = email_of(claims)
            domain = email.rsplit("@", 1)[1].lower() if email else None
            if domain not in domains:
                raise PolicyRefused("sso.policy.email_domain")
        if not get_adapter().is_sign_in_allowed(request, source, claims):
            raise PolicyRefused("sso.policy.adapter_refused")

    def first_sign_in(self, request: HttpRequest | None, source: Source, claims: dict[str, Any]) -> Identity:
        """Link or create the user for a subject seen for the first time; return the identity.

        Runs inside :meth:`authenticate`'s transaction, which retries on a lost race.
        """
        user, created = self._link_or_create(request, source, claims)
        # Claims go in with the row: nothing to update right after.
        identity = Identity.objects.create(
            source=source,
            subject=source.identity_subject(claims),
            user=user,
            claims=get_adapter().stored_claims(source, claims),
        )
        identity.user = user
        self.configure_user(request, user, created)
        return identity

    def _link_or_create(
        self, request: HttpRequest | None, source: Source, claims: dict[str, Any]
    ) -> tuple[AbstractBaseUser, bool]:
        existing = list(self.filter_users_by_claims(source, claims)[:2])
        if existing:
            if Identity.objects.filter(source=source, subject=claims["sub"]).exists():
                # The e-mail is this person's own: a concurrent first sign-in just created the
                # user. Retry; the identity is found then (READ COMMITTED sees it now).
                raise _LostRace
            if not self.may_link_by_email(source, claims):
                # ACC-04/05: an e-mail the provider does not vouch for never opens an account.
                raise PolicyRefused("sso.policy.email_in_use")
            if len(existing) > 1:
                raise PolicyRefused("sso.policy.email_ambiguous")
            user = existing[0]
            if not get_adapter().is_local_email_verified(user):
                user.set_unusable_password()
                user.save(update_fields=["password"])
            self.update_user(user, source, claims)
            return user, False
        if not source.allow_signup:
            raise PolicyRefused("sso.policy.signup_closed")
        return self.create_user(source, claims), True

    def may_link_by_email(self, source: Source, claims: dict[str, Any]) -> bool:
        """Return whether this sign-in may take over an existing account with its e-mail (ACC-05)."""
        return source.link_existing_by_email and source.email_trusted and email_is_verified(claims)

    def filter_users_by_claims(self, source: Source, claims: dict[str, Any]) -> Any:
        """Return the local users whose e-mail equals the claims' (case-insensitive)."""
        User = get_user_model()
        email = email_of(claims)
        if not email:
            return User.objects.none()
        return User.objects.filter(email__iexact=email)

    def create_user(self, source: Source, claims: dict[str, Any]) -> AbstractBaseUser:
        """Create a user named after the claims, with fields from them and no usable password.

        The adapter's ``username_base`` is tried as is; only when a sign-in had to be retried
        (a username was taken) are the numbered alternatives looked up, so a first sign-in costs
        no username query.
        """
        User = get_user_model()
        adapter = get_adapter()
        base = adapter.username_base(source, claims)
        username = base
        if getattr(self, "careful_usernames", False):
            candidates = [base, *(f"{base[:140]}-{n}" for n in range(2, 12))]
            taken = set(
                User.objects.filter(**{f"{User.USERNAME_FIELD}__in": candidates}).values_list(
                    User.USERNAME_FIELD, flat=True
                )
            )
            username = next((c for c in candidates if c not in taken), f"{base[:100]}-{claims['sub'][:40]}")
        user = User(**{User.USERNAME_FIELD: username}, **adapter.user_fields(source, claims))
        user.set_unusable_password()
        user.save()
        return user

    def update_user(self, user: AbstractBaseUser, source: Source, claims: dict[str, Any]) -> None:
        """Refresh user fields from the claims; write only what changed."""
        fields = get_adapter().user_fields(source, claims)
        changed = [name for name, value in fields.items() if getattr(user, name) != value]
        for name in changed:
            setattr(user, name, fields[name])
        if changed:
            user.save(update_fields=changed)

    def configure_user(
        self, request: HttpRequest | None, user: AbstractBaseUser, created: bool = True
    ) -> None:
        """Hook run once when an identity is first linked to ``user`` (created or not)."""
