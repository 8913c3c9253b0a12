"""Every URL route the resolver knows, for the tests that sweep routes."""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver


def every_route() -> Iterator[tuple[str, URLPattern]]:
    """(full pattern text, pattern) of every route, included ones too."""

    def walk(patterns: list[object], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern

    return walk(get_resolver().url_patterns, "")
