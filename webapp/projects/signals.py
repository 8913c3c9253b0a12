"""Signals of the projects app. It sits below the apps that show projects' contents, so it
tells them of a change rather than calling them: ``membership_changed`` is sent, after the
transaction commits, with ``user_id`` whenever a user joins or leaves a project (the live
sockets of the experiments app check again what that user may hear)."""

from django.dispatch import Signal

membership_changed = Signal()
