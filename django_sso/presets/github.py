"""GitHub (or GitHub Enterprise Server): plain OAuth 2, no ID token.

The person is GitHub's numeric ``id`` (a login can be renamed and reused). ``/user`` shows only
the public e-mail, so the verified addresses come from ``/user/emails`` (scope ``user:email``).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from django_sso.presets import Answers, Option, Preset, host


def fill(answers: Answers) -> dict[str, Any]:
    server = answers.get("host", "")
    web = f"https://{server}" if server else "https://github.com"
    api = f"https://{server}/api/v3" if server else "https://api.github.com"
    return {
        "protocol": "oauth2",
        "authorization_url": f"{web}/login/oauth/authorize",
        "token_url": f"{web}/login/oauth/access_token",
        "userinfo_url": f"{api}/user",
        "emails_url": f"{api}/user/emails",
        "scopes": "read:user user:email",
        "profile_subject_field": "id",
        "profile_email_field": "email",
        "profile_name_field": "name",
        "profile_email_verified_field": "",
    }


PRESET = Preset(
    name="github",
    label=_("GitHub"),
    icon="github",
    button_label=_("Sign in with GitHub"),
    description=_("GitHub.com accounts, or your GitHub Enterprise Server."),
    options=(
        Option(
            "host",
            _("Enterprise Server host"),
            _("Only for GitHub Enterprise Server, e.g. github.example.com. Empty: github.com."),
            required=False,
            clean=host,
        ),
    ),
    fill=fill,
)
