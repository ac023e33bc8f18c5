"""Benchmarks: run with ``python -m benchmarks.<name>``; never part of the test suite."""

#: One client at the local provider per library: (client_id, client_secret).
SSO_CLIENT = ("bench-django-sso", "bench-django-sso-secret-0123456789abcdef")
ALLAUTH_CLIENT = ("bench-allauth", "bench-allauth-secret-0123456789abcdef")
MOZILLA_CLIENT = ("bench-mozilla", "bench-mozilla-secret-0123456789abcdef")
