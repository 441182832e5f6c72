"""The Django admin: read-only views of what the monitor saw and did."""

from django.contrib import admin

from .models import Activity, Alert, AlertEvent, ApiKey, CreditLog, Delivery


class ReadOnlyAdmin(admin.ModelAdmin):
    """The log is evidence: inspect it, never edit it by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CreditLog)
class CreditLogAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "key", "ok", "remaining", "usage", "credit_limit", "account_balance", "http_status")
    list_filter = ("ok", ("timestamp", admin.DateFieldListFilter), "key")
    search_fields = ("label", "key__name", "key__label", "error")
    date_hierarchy = "timestamp"
    list_select_related = ("key",)
    show_full_result_count = False  # counting a million rows on every page view is slow


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = (
        "display_name",
        "label",
        "source",
        "is_primary",
        "disabled",
        "credit_limit",
        "limit_reset",
        "expires_at",
        "last_seen",
    )
    list_filter = ("source", "disabled", "is_primary")
    search_fields = ("name", "label", "hash")


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("date", "model", "provider_name", "api_key_hash", "usage", "requests", "final")
    list_filter = (("date", admin.DateFieldListFilter), "provider_name", "final")
    search_fields = ("model", "api_key_hash")
    date_hierarchy = "date"


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ("created", "kind", "level", "message", "user")
    readonly_fields = fields


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("opened_at", "key", "condition", "level", "message", "resolved_at", "acknowledged_by")
    list_filter = ("condition", "level", ("opened_at", admin.DateFieldListFilter))
    search_fields = ("message", "key__name")
    inlines = [AlertEventInline]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created", "channel", "status", "attempts", "duration_ms", "error")
    list_filter = ("status", ("created", admin.DateFieldListFilter))
    search_fields = ("channel", "error")
