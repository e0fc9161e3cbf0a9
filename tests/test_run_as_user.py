"""``request.user`` on a token-protected DRF view: the client's own run-as user, or AnonymousUser.

Pinned at the level of ``_run_as_user`` too: the user is looked up by the client's ``user_id``
(never "some active user"), a client without one costs no query, and a client that no longer
exists gives AnonymousUser rather than an error.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from oauth_cc.contrib.rest_framework.authentication import _run_as_user


@pytest.fixture
def other_user(db):
    """An active user created before the run-as user, so it comes first in any unfiltered query."""
    return get_user_model().objects.create_user("someone-else")


def test_run_as_user_is_the_clients_own_user_not_the_first_active_one(make_client, other_user):
    bot = get_user_model().objects.create_user("report-bot")
    application, _ = make_client("bot", scopes=["reports:read"])
    application.user = bot
    application.save()

    assert _run_as_user(application.client_id) == bot


def test_client_without_a_run_as_user_is_anonymous_without_a_query(
    make_client, other_user, django_assert_num_queries
):
    application, _ = make_client("no-user", scopes=["reports:read"])
    _run_as_user(application.client_id)  # loads the client record into this worker's cache

    with django_assert_num_queries(0):
        user = _run_as_user(application.client_id)

    assert isinstance(user, AnonymousUser)


def test_unknown_client_is_anonymous(db, other_user):
    assert isinstance(_run_as_user("no-such-client"), AnonymousUser)


def test_inactive_run_as_user_is_anonymous_even_when_other_users_are_active(make_client, other_user):
    bot = get_user_model().objects.create_user("report-bot", is_active=False)
    application, _ = make_client("bot", scopes=["reports:read"])
    application.user = bot
    application.save()

    assert isinstance(_run_as_user(application.client_id), AnonymousUser)
