"""WebSockets, through the real ASGI application: every route refuses a foreign or missing
Origin, anonymous visitors and strangers to the run's project; the run list relays nothing of
other projects."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client

from tests.webapp.sockets import Communicator
from webapp.asgi import application
from webapp.experiments import events
from webapp.experiments.consumers import TOO_MANY_SOCKETS
from webapp.experiments.models import Experiment
from webapp.experiments.routing import websocket_urlpatterns
from webapp.projects.models import Membership, Project

pytestmark = pytest.mark.django_db(transaction=True)
GOOD_ORIGIN = b"http://127.0.0.1:8000"
BAD_ORIGINS = [b"http://evil.example", b"http://127.0.0.1.evil.example", b"null",
               b"http://localhost.evil.example:8000", b"file://", b""]
ROUTES = [str(pattern.pattern) for pattern in websocket_urlpatterns]
RUN_ROUTES = [route for route in ROUTES if "<" in route]


def logged_in(user: User) -> tuple[Client, bytes]:
    """A logged-in browser: its client for pages and its cookie for sockets (one session)."""
    client = Client()
    client.force_login(user)
    return client, f"sessionid={client.cookies['sessionid'].value}".encode()


def session_cookie(user: User) -> bytes:
    return logged_in(user)[1]


async def connects(path: str, user: User | None, origin: bytes | None = GOOD_ORIGIN) -> bool:
    """Whether the server accepts the WebSocket (closing it again when it does)."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        headers.append((b"cookie", await asyncio.to_thread(session_cookie, user)))
    client = Communicator(application, path, headers=headers)
    connected, _ = await client.connect(timeout=10)
    if connected:
        await client.disconnect()
    return bool(connected)


def fill(route: str, run: Experiment) -> str:
    """The route's path for ``run`` (a trial), or for its study on the study route."""
    pk = run.parent_id if route.startswith("ws/studies/") else run.pk
    return "/" + re.sub(r"<(?:\w+:)?pk>", str(pk), route)


@pytest.fixture
def run(make_experiment: Any) -> Experiment:
    """A running trial of a running study: a run for the run route, a study for the study's."""
    study = make_experiment(status=Experiment.Status.RUNNING, kind=Experiment.Kind.TUNE)
    return make_experiment(status=Experiment.Status.RUNNING, kind=Experiment.Kind.TRIAL,
                           parent=study)


def test_the_routes_probed_are_the_routes_served():
    assert ROUTES == ["ws/runs/", "ws/runs/<int:pk>/", "ws/studies/<int:pk>/"]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_member_with_the_sites_origin_connects(owner, run, route):
    # the refusals below are refusals, not a broken probe
    assert await connects(fill(route, run), owner)


@pytest.mark.parametrize("origin", BAD_ORIGINS + [None],
                         ids=[o.decode() or "empty" for o in BAD_ORIGINS] + ["missing"])
@pytest.mark.parametrize("route", ROUTES)
async def test_a_foreign_or_missing_origin_is_refused_even_for_a_member(owner, run, route,
                                                                         origin):
    assert not await connects(fill(route, run), owner, origin)


@pytest.mark.parametrize("route", ROUTES)
async def test_an_anonymous_visitor_is_refused(run, route):
    assert not await connects(fill(route, run), None)


@pytest.mark.parametrize("route", RUN_ROUTES)
async def test_a_stranger_is_refused_another_projects_run(stranger, run, route):
    assert not await connects(fill(route, run), stranger)


@pytest.mark.parametrize("route", RUN_ROUTES)
async def test_a_deactivated_member_is_refused(owner, run, route):
    owner.is_active = False  # their session cookie stays valid, their account does not
    await asyncio.to_thread(owner.save)

    assert not await connects(fill(route, run), owner)


async def test_the_run_list_relays_nothing_of_another_project(stranger, run):
    # given a stranger watching their own run list
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", GOOD_ORIGIN),
               (b"cookie", await asyncio.to_thread(session_cookie, stranger))]
    client = Communicator(application, "/ws/runs/", headers=headers)
    connected, _ = await client.connect(timeout=10)

    # when the run of the owner's project changes status
    await get_channel_layer().group_send(events.project_group(run.project_id), {
        "type": "list.update", "project": run.project_id, "id": run.pk, "status": "succeeded"})

    # then the stranger hears nothing of it
    assert connected
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def open_socket(path: str, user: User, cookie: bytes | None = None
                      ) -> Communicator:
    """A connected communicator, past the run page's snapshot."""
    cookie = cookie or await asyncio.to_thread(session_cookie, user)
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", GOOD_ORIGIN), (b"cookie", cookie)]
    client = Communicator(application, path, headers=headers)
    connected, _ = await client.connect(timeout=10)
    assert connected
    if path.startswith("/ws/runs/") and path != "/ws/runs/":
        assert (await client.receive_json_from(timeout=5))["kind"] == "snapshot"
    return client


async def send_update(route: str, run: Experiment) -> None:
    """What the socket's group hears when ``run`` fails."""
    if route == "ws/runs/":
        group, kind = events.project_group(run.project_id), "list.update"
    elif route == "ws/runs/<int:pk>/":
        group, kind = events.run_group(run.pk), "run.status"
    else:
        group, kind = events.study_group(run.parent_id), "study.update"
    await get_channel_layer().group_send(group, {"type": kind, "id": run.pk, "status": "failed",
                                                 "project": run.project_id})


async def relayed(client: Communicator, route: str, run: Experiment) -> dict[str, Any]:
    """Send the socket's group a status message and return what the page receives."""
    await send_update(route, run)
    return dict(await client.receive_json_from(timeout=5))


@pytest.mark.parametrize("route", ROUTES)
async def test_a_frame_that_is_not_json_is_ignored_and_the_socket_stays_live(owner, run, route):
    # given a member's open socket
    client = await open_socket(fill(route, run), owner)

    # when something sends it a text frame that is not JSON and a binary frame
    await client.send_to(text_data="{not json")
    await client.send_to(bytes_data=b"\x00\xff")

    # then the consumer did not fail: it still relays the next update
    assert (await relayed(client, route, run))["status"] == "failed"
    await client.disconnect()


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/ws/runs/abc/", "/ws/runs/1", "/"])
async def test_an_unknown_path_is_refused_without_a_server_error(owner, path, caplog):
    assert not await connects(path, owner)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def connects_as(host: bytes, origin: bytes, scheme: str = "ws",
                      headers: list[tuple[bytes, bytes]] | None = None, *, user: User) -> bool:
    """Whether the run list accepts a member's socket with this Host, Origin and scheme."""
    all_headers = [(b"host", host), (b"origin", origin),
                   (b"cookie", await asyncio.to_thread(session_cookie, user)), *(headers or [])]
    client = Communicator(application, "/ws/runs/", headers=all_headers)
    client.scope["scheme"] = scheme  # as Daphne sets it: wss behind TLS
    connected, _ = await client.connect(timeout=10)
    if connected:
        await client.disconnect()
    return bool(connected)


@pytest.mark.parametrize(("host", "origin", "scheme"), [
    (b"127.0.0.1:8000", b"http://127.0.0.1:8000", "ws"),
    (b"localhost:8000", b"http://localhost:8000", "ws"),
    (b"[::1]:8000", b"http://[::1]:8000", "ws"),
    (b"127.0.0.1", b"http://127.0.0.1", "ws"),
    (b"localhost", b"https://localhost", "wss"),
    (b"localhost:8443", b"https://localhost:8443", "wss"),
])
async def test_the_sites_own_scheme_host_and_port_are_accepted(owner, host, origin, scheme):
    assert await connects_as(host, origin, scheme, user=owner)


@pytest.mark.parametrize(("host", "origin", "scheme"), [
    (b"localhost:8000", b"http://localhost:9999", "ws"),  # another port
    (b"127.0.0.1:8000", b"http://localhost:8000", "ws"),  # another allowed host
    (b"127.0.0.1:8000", b"https://127.0.0.1", "ws"),  # another scheme and port
    (b"127.0.0.1", b"https://127.0.0.1", "ws"),  # HTTPS page, plain socket: another site
    (b"127.0.0.1", b"http://127.0.0.1", "wss"),  # plain page, TLS socket
    (b"[::1]:8000", b"http://[::1]:4444", "ws"),
    (b"evil.example", b"http://evil.example", "ws"),  # a Host outside ALLOWED_HOSTS
])
async def test_another_scheme_host_or_port_is_refused(owner, host, origin, scheme):
    assert not await connects_as(host, origin, scheme, user=owner)


async def test_the_proxys_https_header_counts_only_when_configured(owner, settings):
    forwarded = [(b"x-forwarded-proto", b"https")]
    # not configured: a client's header proves nothing
    assert not await connects_as(b"localhost", b"https://localhost", "ws", forwarded, user=owner)

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert await connects_as(b"localhost", b"https://localhost", "ws", forwarded, user=owner)
    assert not await connects_as(b"localhost", b"http://localhost", "ws", forwarded, user=owner)


async def test_a_trusted_origin_is_accepted_as_csrf_accepts_it(owner, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example.org", "https://*.lab.example"]

    assert await connects_as(b"127.0.0.1:8000", b"https://dash.example.org", user=owner)
    assert await connects_as(b"127.0.0.1:8000", b"https://gpu1.lab.example", user=owner)
    assert not await connects_as(b"127.0.0.1:8000", b"http://dash.example.org", user=owner)
    assert not await connects_as(b"127.0.0.1:8000", b"https://lab.example.evil", user=owner)


@pytest.fixture
def member(project: Any) -> User:
    user = User.objects.create_user("member", password="member-pass-123")
    project.members.add(user)
    return user


@pytest.mark.parametrize("route", ROUTES)
async def test_logging_out_closes_the_sockets_of_that_session(member, run, route):
    # given a member's page with its socket open
    browser, cookie = await asyncio.to_thread(logged_in, member)
    client = await open_socket(fill(route, run), member, cookie)

    # when they log out in that browser
    response = await asyncio.to_thread(browser.post, "/accounts/logout/")

    # then the socket is closed as unauthenticated, and hears nothing more
    assert response.status_code == 302
    assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await send_update(route, run)
    assert await client.receive_nothing(timeout=0.3)


@pytest.mark.parametrize("route", RUN_ROUTES)
async def test_removal_from_the_project_closes_its_run_and_study_sockets(owner, member, run,
                                                                         route):
    # given a member watching a run or study of the project
    client = await open_socket(fill(route, run), member)

    # when another member removes them from the project
    owner_browser, _ = await asyncio.to_thread(logged_in, owner)
    response = await asyncio.to_thread(
        owner_browser.post, f"/projects/{run.project_id}/members/{member.pk}/remove/")

    # then their socket is closed as forbidden, and hears nothing more
    assert response.status_code == 302
    assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await send_update(route, run)
    assert await client.receive_nothing(timeout=0.3)


async def test_removal_from_a_project_stops_the_run_list_hearing_of_it(owner, member, run,
                                                                       make_experiment):
    # given a member of two projects watching the run list
    other = await asyncio.to_thread(Project.objects.create, name="audio")
    await asyncio.to_thread(other.members.add, member)
    client = await open_socket("/ws/runs/", member)

    # when they are removed from the first
    owner_browser, _ = await asyncio.to_thread(logged_in, owner)
    await asyncio.to_thread(
        owner_browser.post, f"/projects/{run.project_id}/members/{member.pk}/remove/")

    # then its runs' updates no longer reach them, the other project's still do
    await send_update("ws/runs/", run)
    assert await client.receive_nothing(timeout=0.3)
    await get_channel_layer().group_send(events.project_group(other.pk), {
        "type": "list.update", "project": other.pk, "id": 999, "status": "running"})
    assert (await client.receive_json_from(timeout=5))["id"] == 999
    await client.disconnect()


@pytest.mark.parametrize("route", ROUTES)
async def test_deactivating_a_member_closes_their_open_sockets(owner, member, run, route):
    # given a member watching the project's runs
    client = await open_socket(fill(route, run), member)

    # when staff deactivate their account (the admin's "active" box)
    member.is_active = False
    await asyncio.to_thread(member.save)

    # then their socket is closed as unauthenticated, and hears nothing more
    assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await send_update(route, run)
    assert await client.receive_nothing(timeout=0.3)


async def test_a_password_change_closes_the_accounts_open_sockets(owner, member, run):
    # given a member watching the run list (a session the new password is meant to end)
    client = await open_socket("/ws/runs/", member)

    # when a login stamps the account, its socket stays open
    await asyncio.to_thread(lambda: member.save(update_fields=["last_login"]))
    assert await client.receive_nothing(timeout=0.3)

    # and when their password is changed, it is closed as unauthenticated
    def change() -> None:
        member.set_password("a new secret 1234")
        member.save()
    await asyncio.to_thread(change)
    assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_saving_an_account_unchanged_keeps_its_sockets(owner, member, run):
    client = await open_socket("/ws/runs/", member)
    await asyncio.to_thread(member.save)
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


@pytest.mark.parametrize("route", RUN_ROUTES)
async def test_removal_outside_the_project_page_closes_its_run_and_study_sockets(
        owner, member, run, route):
    # given a member watching a run or study of the project
    client = await open_socket(fill(route, run), member)

    # when their membership row is deleted elsewhere than on the project page (the admin's
    # members inline deletes the row itself)
    await asyncio.to_thread(lambda: Membership.objects.get(user=member).delete())

    # then their socket is closed as forbidden, and hears nothing more
    assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await send_update(route, run)
    assert await client.receive_nothing(timeout=0.3)


async def test_removal_outside_the_project_page_stops_the_run_list_hearing_of_it(
        owner, member, run):
    # given a member watching the run list
    client = await open_socket("/ws/runs/", member)

    # when their membership row is deleted in the admin
    await asyncio.to_thread(lambda: Membership.objects.get(user=member).delete())

    # then the project's runs' updates no longer reach them
    await asyncio.sleep(0.5)  # the membership message reaches the socket first
    await send_update("ws/runs/", run)
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def refused_for_too_many(path: str, cookie: bytes) -> bool:
    """Whether the server closes a new socket of this session's user with 4429 (too many)."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", GOOD_ORIGIN), (b"cookie", cookie)]
    client = Communicator(application, path, headers=headers)
    connected, _ = await client.connect(timeout=10)
    assert connected  # accepted, so that the page reads the close code
    first = await client.receive_output(timeout=5)
    if first["type"] == "websocket.close":
        return bool(first["code"] == TOO_MANY_SOCKETS)
    await client.disconnect()
    return False


async def test_a_member_past_the_socket_limit_is_refused_and_their_other_tabs_stay_live(
        owner, stranger, project, run, settings):
    # given a limit of 3 sockets per user, the owner holding 3 on one run
    settings.FITBOARD_MAX_SOCKETS_PER_USER = 3
    await asyncio.to_thread(project.members.add, stranger)
    cookie = await asyncio.to_thread(session_cookie, owner)
    path = fill("ws/runs/<int:pk>/", run)
    tabs = [await open_socket(path, owner, cookie) for _ in range(3)]

    # when they open a fourth (on any route)
    refused = [await refused_for_too_many(route, cookie)
               for route in ("/ws/runs/", path, fill("ws/studies/<int:pk>/", run))]

    # then it is closed with 4429, while their three tabs still hear the run and another member
    # of the project connects as before
    assert refused == [True, True, True]
    await send_update("ws/runs/<int:pk>/", run)
    for tab in tabs:
        assert (await tab.receive_json_from(timeout=5))["status"] == "failed"
    other = await open_socket(path, stranger)
    await other.disconnect()
    # and closing a tab frees its place
    await tabs.pop().disconnect()
    tabs.append(await open_socket(path, owner, cookie))
    assert await refused_for_too_many(path, cookie)
    for tab in tabs:
        await tab.disconnect()


async def test_sockets_opened_at_once_do_not_all_pass_the_limit(owner, run, settings):
    # given a limit of 3 sockets per user
    settings.FITBOARD_MAX_SOCKETS_PER_USER = 3
    cookie = await asyncio.to_thread(session_cookie, owner)
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", GOOD_ORIGIN), (b"cookie", cookie)]
    path = fill("ws/runs/<int:pk>/", run)
    clients = [Communicator(application, path, headers=headers) for _ in range(12)]

    # when the owner opens 12 at once
    await asyncio.gather(*(client.connect(timeout=10) for client in clients))

    # then each is either live (its snapshot first) or closed as one too many, and at most 3
    # are live
    firsts = [await client.receive_output(timeout=10) for client in clients]
    live = [client for client, first in zip(clients, firsts, strict=True)
            if first["type"] != "websocket.close"]
    assert all(first.get("code") == TOO_MANY_SOCKETS for first in firsts
               if first["type"] == "websocket.close")
    assert len(live) <= 3
    # (all may be refused: each counts the others' joins) and the refused ones hold no place
    while len(live) < 3:
        live.append(await open_socket(path, owner, cookie))
    assert await refused_for_too_many(path, cookie)
    for client in live:
        await client.disconnect()



async def test_a_member_opening_sockets_in_a_loop_is_refused_past_the_rate(owner, stranger,
                                                                           project, run,
                                                                           settings,
                                                                           one_rate_window):
    # given at most 4 sockets opened a minute per user, and no cap on those open at once
    settings.FITBOARD_SOCKET_RATE_PER_MIN = 4
    settings.FITBOARD_MAX_SOCKETS_PER_USER = 0
    await asyncio.to_thread(project.members.add, stranger)
    cookie = await asyncio.to_thread(session_cookie, owner)
    path = fill("ws/runs/<int:pk>/", run)

    # when the owner opens and closes sockets one after the other, 6 times
    refused = [await refused_for_too_many(path, cookie) for _ in range(6)]

    # then the first 4 are served and the next closed with 4429, while another member of the
    # project still connects
    assert refused == [False] * 4 + [True] * 2
    other = await open_socket(path, stranger)
    await other.disconnect()
