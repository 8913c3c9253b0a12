"""The notification settings' forms: e-mail choices and a new webhook."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from webapp.notifications import addresses
from webapp.notifications.models import EVENT_CHOICES


class EmailChoicesForm(forms.Form):
    events = forms.MultipleChoiceField(
        choices=EVENT_CHOICES, required=False, widget=forms.CheckboxSelectMultiple,
        label="E-mail me when", help_text="Nothing ticked: no e-mail from this project.")


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=2000, label="Payload URL", assume_scheme="https",
                         help_text="Events are POSTed here as JSON, signed with a secret shown "
                                   "once (docs/notifications.md).")
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple,
                                       initial=[value for value, _ in EVENT_CHOICES])

    def clean_url(self) -> Any:
        url = self.cleaned_data["url"]
        try:
            addresses.check(url, settings.FITBOARD_WEBHOOK_ALLOW_PRIVATE)
        except addresses.RefusedAddress as exc:
            raise forms.ValidationError(str(exc)) from None
        return url
