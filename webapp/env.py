"""Small typed parsers for settings from the environment. A bad value fails loudly, naming the
variable; an absent one takes the embedded default."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    return [item.strip() for item in value.split(",") if item.strip()] if value else default


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip() or default
    if value not in choices and not (value.startswith("cuda:") and "cuda" in choices):
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_redis_url(name: str, default: str) -> str:
    value = env_str(name, default)
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name} must be a redis://, rediss:// or unix:// URL")
    return value


# A production SECRET_KEY: Django's deploy check asks for 50 characters, 5 distinct and not its
# "django-insecure-" prefix, and only warns. We refuse, and ask more of the characters: 10
# distinct (`openssl rand -hex 32` has 16) and 128 bits by their observed frequencies
# (get_random_secret_key() scores about 240), so "changeme" repeated to length does not pass.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_DISTINCT = 10
SECRET_KEY_MIN_BITS = 128
GENERATE_HINT = ('generate one with: python -c "from django.core.management.utils import '
                 'get_random_secret_key; print(get_random_secret_key())"')


def secret_key_weakness(value: str) -> str:
    """Why ``value`` is too weak a SECRET_KEY for production ("" when it is not)."""
    if value.startswith("django-insecure-"):
        return "has Django's django-insecure- prefix"
    if len(value) < SECRET_KEY_MIN_LENGTH:
        return f"is shorter than {SECRET_KEY_MIN_LENGTH} characters"
    if len(set(value)) < SECRET_KEY_MIN_DISTINCT:
        return f"has fewer than {SECRET_KEY_MIN_DISTINCT} distinct characters"
    if value in (value + value)[1:-1]:  # a shorter string repeated
        return "repeats a shorter string"
    counts = Counter(value).values()
    bits = -sum(n * math.log2(n / len(value)) for n in counts)
    if bits < SECRET_KEY_MIN_BITS:
        return f"has too little entropy (about {bits:.0f} bits, {SECRET_KEY_MIN_BITS} needed)"
    return ""


def secret_key(var_dir: Path, required: bool = False) -> str:
    """SECRET_KEY from the environment, else (unless ``required``) one generated once and kept
    under ``var_dir``. ``required`` (production) also refuses a weak one."""
    value = os.environ.get("SECRET_KEY", "").strip()
    if required and not value:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when FITBOARD_ENV=production; {GENERATE_HINT}")
    if required and secret_key_weakness(value):
        raise ImproperlyConfigured(
            f"SECRET_KEY {secret_key_weakness(value)}: too weak for FITBOARD_ENV=production; "
            f"{GENERATE_HINT}")
    if value:
        return value
    path = var_dir / "secret_key"
    if not path.exists():
        from django.core.management.utils import get_random_secret_key

        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(get_random_secret_key())
    return path.read_text().strip()
