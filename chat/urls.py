from django.urls import path

from . import api, views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("api/messages/", api.messages, name="api-messages"),
    path("api/conversations/", api.conversations, name="api-conversations"),
]
