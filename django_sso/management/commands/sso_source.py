"""``manage.py sso_source``: the scriptable twin of the Source admin.

    sso_source create --slug SLUG --name NAME (--well-known URL | --authorization-url ... ) ...
    sso_source create --slug SLUG --preset okta --preset-option domain=example.okta.com ...
    sso_source update SLUG [same options]
    sso_source list | presets | refresh SLUG | delete SLUG

Role mapping: ``--permission-prefix app:`` turns scope permissions on; ``--map-group VALUE=GROUP``
(repeatable) replaces the source's group mapping rows, creating missing groups.

Exit code 0 on success; on any error, non-zero with a one-line reason.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from django_sso import presets
from django_sso.exceptions import SSOError
from django_sso.forms import SourceForm, describe, instance_data
from django_sso.internal import discovery
from django_sso.models import GroupMapping, OpaqueTokens, ServiceRule, Source
from django_sso.presets.form import preset_data

#: Option dest -> Source field, for plain values.
VALUE_OPTIONS = {
    "name": "name",
    "new_slug": "slug",
    "protocol": "protocol",
    "client_id": "client_id",
    "client_secret": "client_secret",
    "well_known": "well_known_url",
    "issuer": "issuer",
    "authorization_url": "authorization_url",
    "token_url": "token_url",
    "userinfo_url": "userinfo_url",
    "jwks_url": "jwks_url",
    "end_session_url": "end_session_url",
    "request_token_url": "request_token_url",
    "emails_url": "emails_url",
    "profile_subject_field": "profile_subject_field",
    "profile_email_field": "profile_email_field",
    "profile_name_field": "profile_name_field",
    "profile_email_verified_field": "profile_email_verified_field",
    "tenant_allowlist": "tenant_allowlist",
    "hosted_domain": "hosted_domain",
    "button_icon": "button_icon",
    "scopes": "scopes",
    "token_auth_method": "token_endpoint_auth_method",
    "algorithms": "signing_algorithms",
    "allowed_email_domains": "allowed_email_domains",
    "button_label": "button_label",
    "display_order": "display_order",
    "permission_prefix": "permission_prefix",
    "permission_claim": "permission_claim",
    "permission_scopes": "permission_scopes",
    "permission_app_labels": "permission_app_labels",
    "access_token_audience": "access_token_audience",
    "groups_claim": "groups_claim",
    "post_logout_redirect_uri": "post_logout_redirect_uri",
    "introspection_url": "introspection_url",
    "bearer_scope_claims": "bearer_scope_claims",
    "bearer_service_rule": "bearer_service_rule",
    "bearer_allowed_clients": "bearer_allowed_clients",
    "bearer_opaque_tokens": "bearer_opaque_tokens",
}
#: Repeatable option dest -> Source field holding one value a line.
LINES_OPTIONS = {"staff_value": "staff_values", "superuser_value": "superuser_values"}
#: Option dest -> Source boolean field.
FLAG_OPTIONS = {
    "pkce": "use_pkce",
    "enabled": "enabled",
    "allow_signup": "allow_signup",
    "link_by_email": "link_existing_by_email",
    "email_trusted": "email_trusted",
    "fetch_userinfo": "fetch_userinfo",
    "require_pkce_support": "require_pkce_support",
    "keep_tokens": "keep_refresh_token",
    "revalidate_session": "revalidate_session",
    "logout_at_provider": "logout_at_provider",
    "bearer_require_at_jwt": "bearer_require_at_jwt",
    "bearer_create_users": "bearer_create_users",
    "bearer_delegation": "bearer_delegation",
}


def _add_source_options(parser: ArgumentParser) -> None:
    parser.add_argument("--name")
    parser.add_argument("--protocol", choices=["oidc", "oauth2", "oauth1"])
    parser.add_argument("--client-id", dest="client_id")
    parser.add_argument("--client-secret", dest="client_secret")
    parser.add_argument("--well-known", dest="well_known", help=".../.well-known/openid-configuration")
    parser.add_argument("--issuer")
    for name in (
        "authorization",
        "token",
        "userinfo",
        "jwks",
        "end-session",
        "request-token",
        "emails",
        "introspection",
    ):
        parser.add_argument(f"--{name}-url", dest=f"{name.replace('-', '_')}_url")
    for name in ("subject", "email", "name", "email-verified"):
        field = f"profile_{name.replace('-', '_')}_field"
        parser.add_argument(f"--profile-{name}-field", dest=field, help=f"Set {field} (OAuth 2/1 sources).")
    parser.add_argument("--tenant-allowlist", help="Entra ID: allowed tenant ids, or *.")
    parser.add_argument("--hosted-domain", help="Google: required hd value(s).")
    parser.add_argument("--button-icon")
    parser.add_argument("--jwks-file", dest="jwks_file", help="A JSON file holding the provider's JWKS.")
    parser.add_argument("--scopes", help='Space-separated, e.g. "openid email profile".')
    parser.add_argument("--token-auth-method", choices=["client_secret_basic", "client_secret_post"])
    parser.add_argument("--algorithms", help='ID token algorithm allow-list, e.g. "RS256 ES256".')
    parser.add_argument("--allowed-email-domains")
    parser.add_argument("--button-label")
    parser.add_argument("--display-order", type=int)
    parser.add_argument("--post-logout-redirect-uri", dest="post_logout_redirect_uri")

    bearer = parser.add_mutually_exclusive_group()
    bearer.add_argument(
        "--bearer-audience",
        action="append",
        dest="bearer_audience",
        metavar="AUD",
        help="An audience of this site's API (repeatable; replaces the list): trusts the source's "
        "access tokens as bearer tokens.",
    )
    bearer.add_argument(
        "--no-bearer", action="store_true", help="Stop accepting this source's bearer tokens (no audience)."
    )
    parser.add_argument("--bearer-scope-claims", help='Claim paths holding scopes, e.g. "scope scp[]".')
    parser.add_argument("--bearer-service-rule", choices=[c.value for c in ServiceRule])
    parser.add_argument("--bearer-allowed-clients", help="Space-separated client IDs; empty: any.")
    parser.add_argument(
        "--bearer-opaque-tokens", choices=[c.value for c in OpaqueTokens], help='"" refuses opaque tokens.'
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra authorization parameter (repeatable).",
    )
    for dest, field in FLAG_OPTIONS.items():
        flag = dest.replace("_", "-")
        parser.add_argument(f"--{flag}", dest=dest, action="store_true", default=None, help=f"Set {field}.")
        parser.add_argument(f"--no-{flag}", dest=dest, action="store_false", help=f"Clear {field}.")
    _add_role_options(parser)


def _add_role_options(parser: ArgumentParser) -> None:
    roles = parser.add_argument_group("role mapping")
    roles.add_argument(
        "--permission-prefix",
        metavar="PREFIX",
        help='Turn scope permissions on: grants starting with PREFIX (e.g. "app:") name permissions; '
        '"" turns them off.',
    )
    roles.add_argument(
        "--permission-claim",
        metavar="PATH",
        help='Read grants from this claim path (scp, permissions, roles, realm_access.roles); "" = the '
        "token response's scope.",
    )
    roles.add_argument("--permission-scopes", metavar="SCOPES", help="Permission scopes to ask for.")
    roles.add_argument("--permission-app-labels", metavar="LABELS", help="Apps permissions may resolve in.")
    roles.add_argument("--access-token-audience", metavar="AUD", help="Also read the access token (a JWT).")
    roles.add_argument("--groups-claim", metavar="PATH", help="Claim path of the provider's groups.")
    roles.add_argument(
        "--map-group",
        action="append",
        metavar="VALUE=GROUP",
        help="Provider group VALUE puts the user in Django group GROUP (repeatable; replaces the "
        "source's mappings; a missing group is created).",
    )
    roles.add_argument(
        "--no-map-groups", dest="map_group", action="store_const", const=[], help="Remove every mapping."
    )
    roles.add_argument(
        "--mirror-groups",
        nargs="?",
        const="",
        default=None,
        metavar="PREFIX",
        help="Mirror provider groups as Django groups named PREFIX+name (PREFIX is required unless "
        "the source already has one).",
    )
    roles.add_argument("--no-mirror-groups", dest="mirror_groups", action="store_const", const=False)
    for dest in LINES_OPTIONS:
        flag = dest.replace("_", "-")
        roles.add_argument(
            f"--{flag}",
            dest=dest,
            action="append",
            metavar="VALUE",
            help=f"A provider value that grants {dest.split('_')[0]} status (repeatable; replaces; "
            '"" clears).',
        )


class Command(BaseCommand):
    help = "Create, update, list, refresh or delete SSO sources."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Add a source.")
        create.add_argument("--slug", required=True)
        create.add_argument("--preset", choices=[name for name, _ in presets.choices()])
        create.add_argument(
            "--preset-option",
            dest="preset_options",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="An answer to the preset (repeatable); see `sso_source presets`.",
        )
        _add_source_options(create)
        update = sub.add_parser("update", help="Change a source.")
        update.add_argument("slug")
        update.add_argument("--slug", dest="new_slug", help="Rename the slug.")
        update.add_argument("--refetch", action="store_true", help="Fetch the well-known URL again.")
        _add_source_options(update)
        sub.add_parser("list", help="List sources.")
        sub.add_parser("presets", help="List the presets and what each asks for.")
        for action in ("refresh", "delete"):
            sub.add_parser(action, help=f"{action.title()} a source.").add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            return self.list_sources()
        if action == "presets":
            return self.list_presets()
        if action == "create":
            options["new_slug"] = options.pop("slug")
            if options.get("preset"):
                return self.create_from_preset(options)
            return self.save(Source(), options)
        source = Source.objects.filter(slug=options["slug"]).first()
        if source is None:
            raise CommandError(f"no source with slug {options['slug']!r}")
        if action == "update":
            return self.save(source, options)
        if action == "delete":
            source.delete()
            self.stdout.write(f"deleted {source.slug}")
            return None
        return self.refresh(source)

    def list_sources(self) -> None:
        for source in Source.objects.all():
            state = "enabled" if source.enabled else "disabled"
            self.stdout.write(
                f"{source.slug}\t{source.protocol}\t{state}\t{source.issuer or '-'}\t{source.name}"
            )

    def list_presets(self) -> None:
        for preset in presets.PRESETS.values():
            asks = " ".join(
                f"{o.name}{'' if o.required and not o.default else '?'}"
                + (f"={o.default}" if o.default else "")
                for o in preset.options
            )
            self.stdout.write(f"{preset.name}\t{preset.label}\t{asks or '-'}")

    def create_from_preset(self, options: dict[str, Any]) -> None:
        preset = presets.get(options["preset"])
        assert preset is not None  # argparse checked the name
        raw: dict[str, str] = {}
        for item in options["preset_options"]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--preset-option takes KEY=VALUE, got {item!r}")
            raw[key] = value
        try:
            cleaned = preset.clean_options(raw)
        except ValidationError as exc:
            name, messages = next(iter(getattr(exc, "message_dict", {"preset": exc.messages}).items()))
            raise CommandError(f"preset option {name}: {messages[0]}") from exc
        common = {
            "name": options.get("name") or str(preset.label),
            "slug": options["new_slug"],
            "client_id": options.get("client_id") or "",
            "client_secret": options.get("client_secret") or "",
        }
        # The other options apply on top of what the preset filled, as for any new source.
        self.save(Source(), options, data=preset_data(preset, cleaned, common))

    def refresh(self, source: Source) -> None:
        if not source.well_known_url:
            raise CommandError(f"{source.slug} has no well-known URL")
        try:
            discovery.refresh(source)
        except SSOError as exc:
            if not source.enabled:
                source.save(update_fields=["enabled", "updated_at"])
            raise CommandError(describe(exc)) from exc
        source.save()
        self.stdout.write(f"refreshed {source.slug}: issuer {source.issuer}")

    def save(self, source: Source, options: dict[str, Any], data: dict[str, Any] | None = None) -> None:
        data = instance_data(source) if data is None else data
        for dest, field in {**VALUE_OPTIONS, **FLAG_OPTIONS}.items():
            if options.get(dest) is not None:
                data[field] = options[dest]
        if options.get("bearer_audience"):
            data["bearer_audiences"] = " ".join(options["bearer_audience"])
        elif options.get("no_bearer"):
            data["bearer_audiences"] = ""
        if options.get("jwks_file"):
            try:
                with open(options["jwks_file"], encoding="utf-8") as handle:
                    data["jwks"] = handle.read()
            except OSError as exc:
                raise CommandError(f"cannot read {options['jwks_file']}: {exc.strerror}") from exc
        for dest, field in LINES_OPTIONS.items():
            if options.get(dest) is not None:
                data[field] = "\n".join(v for v in options[dest] if v)
        mirror = options.get("mirror_groups")
        if mirror is not None:
            data["mirror_groups"] = mirror is not False
            if mirror:
                data["mirror_group_prefix"] = mirror
        mappings = self.parse_mappings(options.get("map_group"))
        if options.get("param"):
            params = json.loads(data["extra_authorize_params"])
            for item in options["param"]:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise CommandError(f"--param takes KEY=VALUE, got {item!r}")
                params[key] = value
            data["extra_authorize_params"] = json.dumps(params)
        form = SourceForm(data=data, instance=source)
        form.refetch = bool(options.get("refetch"))
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            raise CommandError(f"{field}: {errors[0]}")
        with transaction.atomic():
            saved = form.save()
            if mappings is not None:
                self.replace_mappings(saved, mappings)
        self.stdout.write(f"saved {saved.slug}: {saved.protocol} issuer {saved.issuer or '-'}")

    def parse_mappings(self, items: list[str] | None) -> list[tuple[str, str]] | None:
        if items is None:
            return None
        mappings = []
        for item in items:
            value, sep, group = item.partition("=")
            if not sep or not value or not group:
                raise CommandError(f"--map-group takes VALUE=GROUP, got {item!r}")
            if len(value) > GroupMapping._meta.get_field("value").max_length:
                raise CommandError(f"--map-group: the value {value[:40]!r}... is too long")
            if len(group) > Group._meta.get_field("name").max_length:
                raise CommandError(f"--map-group: the group name {group[:40]!r}... is too long")
            mappings.append((value, group))
        return mappings

    def replace_mappings(self, source: Source, mappings: list[tuple[str, str]]) -> None:
        """Make the source's group mapping rows exactly ``mappings``."""
        source.group_mappings.all().delete()
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in {g for _v, g in mappings}}
        GroupMapping.objects.bulk_create(
            [GroupMapping(source=source, value=v, group=groups[g]) for v, g in dict.fromkeys(mappings)]
        )
