"""Celery tasks: take ids, call one function."""

from celery import shared_task

from webapp.notifications import emails, webhooks


@shared_task(name="notifications.deliver", acks_late=True, ignore_result=True)
def deliver(webhook_id: int, notification_id: int, attempt: int) -> None:
    webhooks.deliver(webhook_id, notification_id, attempt)


@shared_task(name="notifications.email", acks_late=True, ignore_result=True)
def email(notification_id: int) -> None:
    emails.send(notification_id)
