from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .forms import AdminUserChangeForm, AdminUserCreationForm
from .models import GLOBAL_PEER, Message, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = AdminUserCreationForm
    form = AdminUserChangeForm


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "sender", "recipient_name", "sent_at", "excerpt")
    list_filter = (("sent_at", admin.DateFieldListFilter),)
    search_fields = ("text", "sender__username", "recipient__username")
    date_hierarchy = "sent_at"
    list_select_related = ("sender", "recipient")
    raw_id_fields = ("sender", "recipient")
    readonly_fields = ("sent_at", "client_id")
    ordering = ("-id",)

    def get_readonly_fields(self, request: Any, obj: Message | None = None) -> tuple[str, ...]:
        # A stored message stays in its conversation: the summaries counted it there.
        if obj is not None:
            return (*self.readonly_fields, "sender", "recipient")
        return self.readonly_fields

    @admin.display(description="recipient", ordering="recipient__username")
    def recipient_name(self, message: Message) -> str:
        return message.recipient.get_username() if message.recipient else GLOBAL_PEER

    @admin.display(description="text")
    def excerpt(self, message: Message) -> str:
        return message.text if len(message.text) <= 80 else message.text[:79] + "…"
