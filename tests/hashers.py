"""The password hasher of the test process (see ``tests.conftest._quick_password_hashing``)."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 at 1,000 iterations: hashes any server on the production
    settings checks as they are."""

    iterations = 1000
