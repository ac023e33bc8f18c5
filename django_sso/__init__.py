"""Sign in with any OpenID Connect, OAuth 2 or OAuth 1 provider, configured in the Django admin."""

__version__ = "0.1.0"
