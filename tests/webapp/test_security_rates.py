"""A logged-in user's requests per minute (FITBOARD_PAGE_RATE_PER_MIN, ``webapp.ratelimit``):
past the allowance every page and JSON route answers 429 with Retry-After, counted across
their sessions, while other users are served as before."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_user_past_the_page_rate_gets_429_and_others_do_not(owner, stranger, project,
                                                             settings, one_rate_window):
    # given an allowance of 5 requests a minute, and the owner logged in twice
    settings.FITBOARD_PAGE_RATE_PER_MIN = 5
    laptop, phone = logged_in(owner), logged_in(owner)
    pages = [reverse("experiment-list"), reverse("project-list"),
             reverse("project-detail", args=[project.pk])]

    # when they load pages from both sessions, 7 in all
    codes = [(laptop if n % 2 else phone).get(pages[n % len(pages)]).status_code
             for n in range(7)]
    refused = laptop.get(reverse("experiment-list"))

    # then the first 5 are served and the rest refused, with when to try again
    assert codes == [200] * 5 + [429] * 2
    assert refused.status_code == 429
    assert "FITBOARD_PAGE_RATE_PER_MIN" in refused.content.decode()
    assert 1 <= int(refused["Retry-After"]) <= 60
    # and another user, and an anonymous visitor, are served as before
    assert logged_in(stranger).get(reverse("experiment-list")).status_code == 200
    assert Client().get(reverse("experiment-list")).status_code == 302  # to the login page


def test_no_limit_counts_nothing(owner, settings):
    settings.FITBOARD_PAGE_RATE_PER_MIN = 0
    client = logged_in(owner)

    assert {client.get(reverse("experiment-list")).status_code for _ in range(30)} == {200}
