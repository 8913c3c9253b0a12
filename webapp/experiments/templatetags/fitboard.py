"""Template filters for metric values."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def number(value: object) -> object:
    """A float to 4 significant digits (0.1529062348 → 0.1529, 151.23 → 151.2); anything else
    unchanged."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


@register.filter
def count(value: object) -> object:
    """A whole number with thousands separators (4506112 → 4,506,112), as the run page's
    script prints them; anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return value
