"""Database models: a configured provider (``Source``), a person's link to it (``Identity``),
role mapping (provider values mapped to groups, ``GroupMapping``, and what each source granted
whom, ``Grant``), the tokens kept for a link (``TokenSet``) and the Django sessions a sign-in
opened (``SSOSession``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_sso.fields import EncryptedTextField


class Protocol(models.TextChoices):
    OIDC = "oidc", _("OpenID Connect")
    OAUTH2 = "oauth2", _("OAuth 2.0")
    OAUTH1 = "oauth1", _("OAuth 1.0a")


class TokenAuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", _("HTTP Basic (client_secret_basic)")
    CLIENT_SECRET_POST = "client_secret_post", _("Form body (client_secret_post)")


def _split(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


def _lines(value: str) -> list[str]:
    # Provider group names often hold spaces ("Domain Admins") and commas (LDAP DNs): one a line.
    return [line.strip() for line in value.splitlines() if line.strip()]


class ServiceRule(models.TextChoices):
    """How a bearer token with no person behind it (client credentials) is recognised (RS-10)."""

    CLIENT_ID = "client_id", _("sub equals the token's client (client_id, azp or cid): RFC 9068, Okta")
    IDTYP = "idtyp", _("idtyp is “app”: Microsoft Entra ID")
    GTY = "gty", _("gty is “client-credentials”: Auth0")
    NONE = "none", _("never: every token is a person's")


class OpaqueTokens(models.TextChoices):
    """How access tokens that are not JWTs are checked."""

    REFUSE = "", _("refused (JWT access tokens only)")
    INTROSPECTION = "introspection", _("token introspection (RFC 7662)")
    USERINFO = "userinfo", _("the UserInfo endpoint")


class SourceQuerySet(models.QuerySet):
    def enabled(self) -> SourceQuerySet:
        return self.filter(enabled=True).order_by("display_order", "name")


class Source(models.Model):
    """One configured identity provider."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=50, unique=True, help_text=_("Used in URLs."))
    protocol = models.CharField(_("protocol"), max_length=10, choices=Protocol.choices, default=Protocol.OIDC)
    enabled = models.BooleanField(_("enabled"), default=True)
    display_order = models.PositiveSmallIntegerField(_("display order"), default=0)
    button_label = models.CharField(
        _("button label"),
        max_length=100,
        blank=True,
        help_text=_("Defaults to “Sign in with <name>”."),
    )
    button_icon = models.CharField(
        _("button icon"),
        max_length=50,
        blank=True,
        help_text=_("An icon name for the sign-in button (data-sso-icon), e.g. google or microsoft."),
    )
    preset = models.CharField(
        _("preset"),
        max_length=40,
        blank=True,
        help_text=_("The provider preset this source was made from; empty for a hand-made source."),
    )
    preset_options = models.JSONField(
        _("preset options"),
        default=dict,
        blank=True,
        help_text=_("What the preset asked for (domain, tenant, realm ...)."),
    )

    client_id = models.CharField(_("client ID"), max_length=255)
    client_secret = EncryptedTextField(_("client secret"), blank=True)
    token_endpoint_auth_method = models.CharField(
        _("token endpoint authentication"),
        max_length=32,
        choices=TokenAuthMethod.choices,
        default=TokenAuthMethod.CLIENT_SECRET_BASIC,
    )

    well_known_url = models.URLField(
        _("well-known URL"),
        max_length=500,
        blank=True,
        help_text=_("…/.well-known/openid-configuration. Fetched once on save; fills the endpoints."),
    )
    issuer = models.CharField(_("issuer"), max_length=500, blank=True)
    authorization_url = models.URLField(_("authorization URL"), max_length=500, blank=True)
    token_url = models.URLField(_("token URL"), max_length=500, blank=True)
    userinfo_url = models.URLField(_("userinfo / profile URL"), max_length=500, blank=True)
    jwks_url = models.URLField(_("JWKS URL"), max_length=500, blank=True)
    jwks = models.JSONField(
        _("JWKS"),
        blank=True,
        null=True,
        help_text=_("Public keys, for providers without a JWKS URL."),
    )
    end_session_url = models.URLField(_("end-session (logout) URL"), max_length=500, blank=True)
    request_token_url = models.URLField(
        _("request-token URL"), max_length=500, blank=True, help_text=_("OAuth 1.0a only.")
    )

    scopes = models.CharField(_("scopes"), max_length=500, default="openid email profile", blank=True)
    use_pkce = models.BooleanField(_("use PKCE (S256)"), default=True)
    require_pkce_support = models.BooleanField(
        _("require advertised PKCE support"),
        default=False,
        help_text=_("Refuse a discovery document that does not list S256."),
    )
    extra_authorize_params = models.JSONField(
        _("extra authorization parameters"),
        default=dict,
        blank=True,
        help_text=_('For example {"prompt": "select_account", "hd": "example.com"}.'),
    )
    signing_algorithms = models.CharField(
        _("ID token algorithms"),
        max_length=100,
        default="RS256",
        help_text=_("Space-separated allow-list. HS256 only with a client secret of 32+ bytes."),
    )
    trusted_audiences = models.CharField(
        _("other trusted audiences"),
        max_length=500,
        blank=True,
        help_text=_("Audiences besides the client ID an ID token may also name."),
    )
    fetch_userinfo = models.BooleanField(
        _("fetch UserInfo"),
        default=True,
        help_text=_("Call the UserInfo endpoint at each sign-in."),
    )
    iss_parameter_supported = models.BooleanField(
        _("provider sends iss in the authorization response (RFC 9207)"), default=False
    )
    provider_metadata = models.JSONField(_("discovery document"), default=dict, blank=True)

    profile_subject_field = models.CharField(
        _("profile: subject field"),
        max_length=100,
        default="sub",
        blank=True,
        help_text=_(
            "OAuth 2 and OAuth 1 sources: the profile field holding the provider's immutable user id "
            "(a dotted path for nested fields, e.g. data.id; empty: sub). Never an e-mail or a "
            "screen name."
        ),
    )
    profile_email_field = models.CharField(
        _("profile: e-mail field"), max_length=100, default="email", blank=True
    )
    profile_name_field = models.CharField(
        _("profile: name field"), max_length=100, default="name", blank=True
    )
    profile_email_verified_field = models.CharField(
        _("profile: e-mail verified field"),
        max_length=100,
        blank=True,
        help_text=_("A field that is the JSON true when the e-mail is verified. Empty: never verified."),
    )
    emails_url = models.URLField(
        _("e-mails URL"),
        max_length=500,
        blank=True,
        help_text=_(
            "GitHub-style list of the user's addresses ([{email, primary, verified}]): the primary "
            "verified one becomes the e-mail, counted as verified."
        ),
    )
    tenant_allowlist = models.CharField(
        _("allowed tenants"),
        max_length=1000,
        blank=True,
        help_text=_(
            "Microsoft Entra ID: tenant ids (tid) allowed to sign in, space-separated; * allows every "
            "tenant. Required for the multi-tenant common/organizations endpoints."
        ),
    )
    hosted_domain = models.CharField(
        _("hosted domain"),
        max_length=255,
        blank=True,
        help_text=_(
            "Google Workspace: ID tokens must carry one of these hd values (space-separated). A single "
            "domain is also sent as the hd parameter."
        ),
    )
    last_discovery_at = models.DateTimeField(_("last discovery"), null=True, blank=True)

    allow_signup = models.BooleanField(
        _("allow new users"), default=True, help_text=_("Create a user at a first sign-in.")
    )
    link_existing_by_email = models.BooleanField(
        _("link existing users by e-mail"),
        default=False,
        help_text=_("Sign in to an existing local account with the same verified e-mail."),
    )
    email_trusted = models.BooleanField(
        _("trusted for e-mail"),
        default=False,
        help_text=_("The provider is authoritative for its users' e-mail addresses."),
    )
    allowed_email_domains = models.CharField(
        _("allowed e-mail domains"),
        max_length=500,
        blank=True,
        help_text=_("Space-separated; empty allows any domain."),
    )

    # Role mapping (django_sso.roles): applied at every sign-in.
    permission_prefix = models.CharField(
        _("permission prefix"),
        max_length=50,
        blank=True,
        help_text=_(
            "Use provider scopes as permissions: a grant “app:manage_orders” with the prefix “app:” "
            "gives the permission manage_orders (or app_label.codename). Empty: off."
        ),
    )
    permission_claim = models.CharField(
        _("permission claim"),
        max_length=200,
        blank=True,
        help_text=_(
            "Where grants are read: empty for the token response's scope, or a claim path such as "
            "scp, permissions, roles, realm_access.roles, resource_access.CLIENT.roles."
        ),
    )
    permission_scopes = models.CharField(
        _("permission scopes to request"),
        max_length=1000,
        blank=True,
        help_text=_("Space-separated, each starting with the prefix; also asked for at sign-in."),
    )
    permission_app_labels = models.CharField(
        _("permission apps"),
        max_length=500,
        blank=True,
        help_text=_(
            "Space-separated app labels permissions may resolve in. Empty: any app, and a bare "
            "codename only when exactly one app has it."
        ),
    )
    access_token_audience = models.CharField(
        _("access token audience"),
        max_length=500,
        blank=True,
        help_text=_(
            "Also read claim paths from the access token when it is a JWT signed by the provider for "
            "this audience (e.g. api://default). Empty: never read the access token."
        ),
    )
    groups_claim = models.CharField(
        _("groups claim"),
        max_length=200,
        blank=True,
        help_text=_("Claim path of the provider's groups, e.g. groups or roles. Empty: off."),
    )
    mirror_groups = models.BooleanField(
        _("mirror provider groups"),
        default=False,
        help_text=_("Put the user in a Django group named after each provider group (created when missing)."),
    )
    mirror_group_prefix = models.CharField(
        _("mirrored group prefix"),
        max_length=50,
        blank=True,
        help_text=_("Prepended to mirrored group names, e.g. “sso:”."),
    )
    staff_values = models.TextField(
        _("staff values"),
        blank=True,
        help_text=_("One a line: a user whose provider groups or grants include one is staff. Empty: off."),
    )
    superuser_values = models.TextField(
        _("superuser values"),
        blank=True,
        help_text=_("One a line, as staff values. Used only when DJANGO_SSO_ALLOW_SUPERUSER_MAPPING is on."),
    )

    # Sessions and sign-out (django_sso.tokens, .sessions, .logout).
    keep_refresh_token = models.BooleanField(
        _("keep tokens"),
        default=False,
        help_text=_(
            "Store the access, refresh and ID token (encrypted) so the site can call the provider's "
            "APIs for the user. Add offline_access to the scopes where the provider needs it."
        ),
    )
    revalidate_session = models.BooleanField(
        _("re-validate sessions"),
        default=False,
        help_text=_(
            "When the stored access token expires, refresh it; sign the user out when the provider "
            "refuses (revoked). Needs “keep tokens” and SessionRevalidationMiddleware."
        ),
    )
    logout_at_provider = models.BooleanField(
        _("sign out at the provider"),
        default=False,
        help_text=_("After signing out here, send the browser to the end-session (logout) URL."),
    )
    post_logout_redirect_uri = models.URLField(
        _("post-logout redirect URI"),
        max_length=500,
        blank=True,
        help_text=_("Where the provider sends the browser back; empty: <site>/sso/logged-out/."),
    )

    # Resource server (django_sso.bearer): access tokens from this source authenticate API calls.
    bearer_audiences = models.CharField(
        _("API audiences (bearer tokens)"),
        max_length=500,
        blank=True,
        help_text=_(
            "Space-separated audiences (aud) of this site's API. Not empty: access tokens from this "
            "source are accepted as bearer tokens when their aud names one of these."
        ),
    )
    bearer_require_at_jwt = models.BooleanField(
        _("require RFC 9068 access tokens (typ at+jwt)"),
        default=False,
        help_text=_(
            "Off: typ JWT or none is accepted too, if the token carries an access-token claim "
            "(scope, scp, roles, permissions, client_id or cid)."
        ),
    )
    bearer_scope_claims = models.CharField(
        _("scope claims"),
        max_length=200,
        default="scope",
        blank=True,
        help_text=_(
            "Space-separated claim paths read as scopes: “scope” is a space-delimited string, "
            "“scp[]” a JSON array of strings. A claim of another type grants nothing. Empty: scope."
        ),
    )
    bearer_service_rule = models.CharField(
        _("service tokens"),
        max_length=16,
        choices=ServiceRule.choices,
        default=ServiceRule.CLIENT_ID,
        blank=True,
        help_text=_("How a token with no person behind it (client credentials) is recognised."),
    )
    bearer_allowed_clients = models.CharField(
        _("allowed clients"),
        max_length=500,
        blank=True,
        help_text=_(
            "Space-separated client IDs (client_id, azp or cid) whose tokens are accepted; empty: any."
        ),
    )
    bearer_create_users = models.BooleanField(
        _("create users from bearer tokens"),
        default=False,
        help_text=_(
            "Create the user at the first token of an unknown subject, as a first sign-in would "
            "(the sign-in policy applies). Off: such a token is refused."
        ),
    )
    bearer_delegation = models.BooleanField(
        _("narrow tokens to the user's permissions"),
        default=False,
        help_text=_(
            "Off: the provider is the authority, a token's scopes are its permissions. On: a "
            "person's token has only the permissions its scopes give and the user also holds."
        ),
    )
    bearer_opaque_tokens = models.CharField(
        _("opaque access tokens"),
        max_length=16,
        choices=OpaqueTokens.choices,
        default=OpaqueTokens.REFUSE,
        blank=True,
        help_text=_("At most one source may check opaque tokens: they name no issuer."),
    )
    introspection_url = models.URLField(_("introspection URL"), max_length=500, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SourceQuerySet.as_manager()

    class Meta:
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        ordering = ["display_order", "name"]
        constraints = [
            # RFC 9207 4: issuer identifiers must be unique across providers (CFG-02).
            models.UniqueConstraint(
                fields=["issuer"], condition=~Q(issuer=""), name="django_sso_source_unique_issuer"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.revalidate_session and not self.keep_refresh_token:
            message = _("Re-validating sessions needs “keep tokens”: there is nothing to refresh.")
            raise ValidationError({"revalidate_session": message})

    @property
    def label(self) -> str:
        return self.button_label or _("Sign in with %(name)s") % {"name": self.name}

    @property
    def scope_list(self) -> list[str]:
        return _split(self.scopes)

    @property
    def algorithm_list(self) -> list[str]:
        return _split(self.signing_algorithms)

    @property
    def trusted_audience_list(self) -> list[str]:
        return _split(self.trusted_audiences)

    @property
    def email_domain_list(self) -> list[str]:
        return [d.lower().lstrip("@") for d in _split(self.allowed_email_domains)]

    @property
    def permission_scope_list(self) -> list[str]:
        return _split(self.permission_scopes)

    @property
    def permission_app_label_list(self) -> list[str]:
        return _split(self.permission_app_labels)

    @property
    def staff_value_list(self) -> list[str]:
        return _lines(self.staff_values)

    @property
    def superuser_value_list(self) -> list[str]:
        return _lines(self.superuser_values)

    @property
    def tenant_list(self) -> list[str]:
        return [t.lower() for t in _split(self.tenant_allowlist)]

    @property
    def hosted_domain_list(self) -> list[str]:
        return [d.lower() for d in _split(self.hosted_domain)]

    @property
    def bearer_audience_list(self) -> list[str]:
        return _split(self.bearer_audiences)

    @property
    def bearer_allowed_client_list(self) -> list[str]:
        return _split(self.bearer_allowed_clients)

    @property
    def accepts_bearer_tokens(self) -> bool:
        """Return whether access tokens from this source authenticate API calls."""
        return self.enabled and bool(self.bearer_audience_list)

    @property
    def is_oidc(self) -> bool:
        return self.protocol == Protocol.OIDC

    @property
    def is_oauth1(self) -> bool:
        return self.protocol == Protocol.OAUTH1

    def identity_subject(self, claims: dict[str, Any]) -> str:
        """Return the key of a person at this source: ``sub``, or ``tid:sub`` for multi-tenant Entra."""
        from django_sso.internal import entra

        return entra.identity_subject(self, claims)

    def client_credentials_token(
        self,
        *,
        scope: str | list[str] | None = None,
        audience: str | None = None,
        resource: str | None = None,
    ) -> str:
        """Return an access token of this client itself (RFC 6749 4.4), for calling other APIs.

        The token is cached in Django's cache, shared by every process, until shortly before it
        expires. Raise :class:`~django_sso.exceptions.SSOError` when the provider refuses.
        """
        from django_sso.internal import client_credentials

        return client_credentials.access_token(self, scope=scope, audience=audience, resource=resource)

    def cache_key(self, kind: str) -> str:
        """Return a cache key private to this source and its current configuration."""
        # Remembered per (pk, updated_at): bearer tokens ask for it several times a request.
        memo = self.__dict__.get("_cache_keys")
        if memo is None or memo[0] != (self.pk, self.updated_at):
            memo = self.__dict__["_cache_keys"] = ((self.pk, self.updated_at), {})
        key = memo[1].get(kind)
        if key is None:
            stamp = self.updated_at.timestamp() if self.updated_at else 0
            key = memo[1][kind] = f"django_sso:{kind}:{self.pk}:{stamp}"
        return key


class Identity(models.Model):
    """A person at a source, linked to a local user: unique per (source, subject)."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="identities")
    subject = models.CharField(_("subject"), max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    claims = models.JSONField(_("last claims"), default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(fields=["source", "subject"], name="django_sso_identity_unique_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.source} / {self.subject}"

    def update_claims(self, claims: dict[str, Any]) -> bool:
        """Store ``claims`` when they differ from the stored ones; return whether it wrote."""
        if claims == self.claims:
            return False
        self.claims = claims
        self.save(update_fields=["claims", "updated_at"])
        return True


class GroupMapping(models.Model):
    """A provider value (in the source's groups claim) that puts the user in a Django group."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="group_mappings")
    value = models.CharField(_("provider value"), max_length=255)
    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, related_name="sso_group_mappings", verbose_name=_("group")
    )

    class Meta:
        verbose_name = _("group mapping")
        verbose_name_plural = _("group mappings")
        ordering = ["value", "group__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "value", "group"], name="django_sso_groupmapping_unique_value_group"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.value} → {self.group}"


class GrantKind(models.TextChoices):
    PERMISSION = "permission", _("permission")
    GROUP = "group", _("group")
    STAFF = "staff", _("staff status")
    SUPERUSER = "superuser", _("superuser status")


class Grant(models.Model):
    """One thing a source's role mapping gave a user; the next sign-in takes back only these.

    A permission, group or flag the user had before any source granted it has no Grant: it was
    given by hand and the mapping never removes it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_grants")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="grants")
    kind = models.CharField(_("kind"), max_length=12, choices=GrantKind.choices)
    permission = models.ForeignKey(
        "auth.Permission", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)

    class Meta:
        verbose_name = _("SSO grant")
        verbose_name_plural = _("SSO grants")
        ordering = ["source", "kind", "granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "source", "permission"],
                condition=Q(kind="permission"),
                name="django_sso_grant_unique_permission",
            ),
            models.UniqueConstraint(
                fields=["user", "source", "group"],
                condition=Q(kind="group"),
                name="django_sso_grant_unique_group",
            ),
            models.UniqueConstraint(
                fields=["user", "source", "kind"],
                condition=Q(kind__in=["staff", "superuser"]),
                name="django_sso_grant_unique_flag",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.target}"

    @property
    def target(self) -> str:
        """Return what was granted: ``app_label.codename``, the group's name, or the flag."""
        if self.kind == GrantKind.PERMISSION and self.permission is not None:
            return f"{self.permission.content_type.app_label}.{self.permission.codename}"
        if self.kind == GrantKind.GROUP and self.group is not None:
            return self.group.name
        return str(self.get_kind_display())


class TokenSet(models.Model):
    """The tokens of the last sign-in (or refresh) of an identity, encrypted at rest.

    Kept only for sources with ``keep_refresh_token``; read through
    :func:`django_sso.tokens.get_access_token`. ``id_claims`` holds what a refreshed ID token
    must repeat (OIDC Core 12.2): ``iss``, ``sub``, ``aud``, ``azp``, ``auth_time``, ``nonce``.
    """

    identity = models.OneToOneField(Identity, on_delete=models.CASCADE, related_name="token_set")
    access_token = EncryptedTextField(_("access token"))
    refresh_token = EncryptedTextField(_("refresh token"), blank=True)
    id_token = EncryptedTextField(_("ID token"), blank=True)
    id_claims = models.JSONField(_("ID token claims to keep"), default=dict, blank=True)
    scope = models.CharField(_("granted scope"), max_length=1000, blank=True)
    expires_at = models.DateTimeField(_("access token expires at"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("token set")
        verbose_name_plural = _("token sets")

    def __str__(self) -> str:
        return f"tokens of {self.identity_id}, expire {self.expires_at:%Y-%m-%d %H:%M:%S}"

    @property
    def scope_list(self) -> list[str]:
        return self.scope.split()


class SSOSession(models.Model):
    """A Django session opened by a sign-in through a source, so it can be ended from outside.

    Back-channel logout, the admin and a refresh that the provider refuses end sessions through
    the session engine (database, cache or cached_db), on every worker. The session key is a
    credential: it is stored encrypted and never shown.
    """

    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="sso_sessions")
    session_key = EncryptedTextField(_("session key"))
    sid = models.CharField(_("provider session ID (sid)"), max_length=255, blank=True, db_index=True)
    id_token = EncryptedTextField(_("ID token"), blank=True)
    created_at = models.DateTimeField(_("signed in at"), default=timezone.now)

    class Meta:
        verbose_name = _("SSO session")
        verbose_name_plural = _("SSO sessions")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.identity} since {self.created_at:%Y-%m-%d %H:%M:%S}"
