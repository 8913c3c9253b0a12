"""The API tokens page (create, list, revoke) and the run page's artifact downloads."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.experiments.models import Experiment, parse_pk
from webapp.projects.models import Project
from webapp.tracking import artifacts, tokens
from webapp.tracking.models import ApiToken


class ProjectsField(forms.ModelMultipleChoiceField):
    """Projects ticked by id. An id past a bigint is refused as any unknown one, before the
    query: SQLite's driver raised OverflowError on it inside ``pk__in``, a server error (the
    single-choice fields' ``pk=`` lookups already answer no row for it)."""

    def clean(self, value: Any) -> Any:
        for item in value or ():
            if parse_pk(str(item)) is None:
                raise forms.ValidationError(self.error_messages["invalid_pk_value"],
                                            code="invalid_pk_value", params={"pk": item})
        return super().clean(value)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. laptop")
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.WRITE,
                              widget=forms.RadioSelect)
    projects = ProjectsField(
        queryset=Project.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all your projects, including those you join or the token "
                  "creates later.")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["projects"].queryset = Project.objects.filter(members=user).order_by("name")

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """The user's tokens; a POST creates one and shows it, once."""
    created = None
    if request.method == "POST":
        form = TokenForm(request.POST, user=request.user)
        if form.is_valid():
            chosen = list(form.cleaned_data["projects"])
            _, created = tokens.create_token(request.user, form.cleaned_data["name"],
                                             form.cleaned_data["scope"], chosen or None)
            form = TokenForm(user=request.user)
    else:
        form = TokenForm(user=request.user)
    rows = ApiToken.objects.filter(user=request.user).prefetch_related("projects")
    response = render(request, "tracking/tokens.html", {
        "form": form, "tokens": rows, "created": created,
        "tracking_uri": request.build_absolute_uri("/").rstrip("/"),
    })
    if created:
        response["Cache-Control"] = "no-store"  # the token is on this page only
    return response


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    if not tokens.revoke_token(request.user, pk):  # another's token: the same as none
        raise Http404("no such live token")
    messages.info(request, "Token revoked: it no longer works.")
    return redirect("api-tokens")


@require_GET
def artifact_download(request: HttpRequest, pk: int, path: str) -> HttpResponse:
    run = get_object_or_404(Experiment.objects.visible_to(request.user), pk=pk)
    return artifacts.download(request, run, path)
