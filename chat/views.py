"""Pages: the chat, sign-up, password change and the health check (log-in and log-out are
Django's own views)."""

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from . import services
from .forms import SignUpForm
from .health import health_check
from .signals import password_change_handled_by_caller


@require_GET
@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/index.html")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:index")
    return render(request, "registration/signup.html", {"form": form})


def login_locked_out(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """What django-axes answers while log-ins are paused: the same for every username."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(request, "registration/lockout.html", {"minutes": minutes}, status=429)


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's view; then the sockets of the user's other sessions close with 4401."""

    def form_valid(self, form: Any) -> HttpResponse:
        kept_key = self.request.session.session_key
        with transaction.atomic(), password_change_handled_by_caller():
            response = super().form_valid(form)
        services.sockets_recheck_sessions(
            user_id=form.user.pk,
            kept_session_key=kept_key,
            new_session_key=self.request.session.session_key,
        )
        return response


async def healthz(request: HttpRequest) -> JsonResponse:
    checks = await health_check()
    failed = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "error" if failed else "ok", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)
