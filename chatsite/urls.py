from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat import views as chat_views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", chat_views.signup, name="signup"),
    path(
        "accounts/password_change/",
        chat_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("healthz", chat_views.healthz, name="healthz"),
    path("", include("chat.urls")),
]
