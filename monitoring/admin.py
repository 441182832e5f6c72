"""The Django admin: what the monitor saw and did, read-only (money in $, times in UTC); users, groups and
whatever else is registered stay as their own admin allows. The index names the read-only models itself."""

from datetime import UTC

from django.contrib import admin
from django.template.defaultfilters import truncatechars
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from .models import (
    Activity,
    AgentTask,
    Alert,
    AlertEvent,
    ApiKey,
    AuditEntry,
    CatalogueFetch,
    CatalogueModel,
    CataloguePrice,
    CreditLog,
    Delivery,
    TaskDelivery,
)

admin.site.site_header = "creditmon admin"
admin.site.site_title = "creditmon"
admin.site.index_title = "What creditmon saw and did, and who may use it"


def usd(value) -> str:
    """$1,234.56 for lists; the detail page shows the stored value itself."""
    if value is None:
        return "–"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def utc(value) -> str:
    """ISO 8601 in UTC, as the exports and the API write times."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def money_column(field: str, title: str):
    def show(obj):
        return usd(getattr(obj, field))

    show.short_description = title
    show.admin_order_field = field
    show.__name__ = field  # the column's CSS class: field-<name>
    return show


def time_column(field: str, title: str):
    def show(obj):
        return utc(getattr(obj, field))

    show.short_description = title
    show.admin_order_field = field
    show.__name__ = field
    return show


class NoWrites:
    """No add, change or delete from the browser, for anyone (superusers included); no bulk actions."""

    actions = None

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(NoWrites, admin.ModelAdmin):
    """The log is evidence: inspect it, never add, edit or delete it by hand (deletes would cascade)."""


@admin.register(CreditLog)
class CreditLogAdmin(ReadOnlyAdmin):
    list_display = (
        time_column("timestamp", "time (UTC)"),
        "key",
        "ok",
        money_column("remaining", "remaining"),
        money_column("usage", "usage"),
        money_column("credit_limit", "limit"),
        money_column("account_balance", "account"),
        "http_status",
    )
    list_filter = ("ok", ("timestamp", admin.DateFieldListFilter), "key")
    search_fields = ("label", "key__name", "key__label", "error")
    date_hierarchy = "timestamp"
    list_select_related = ("key",)
    show_full_result_count = False  # counting a million rows on every page view is slow


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = (
        "display_name",
        "source",
        "is_primary",
        "disabled",
        money_column("credit_limit", "limit"),
        "limit_reset",
        time_column("expires_at", "expires (UTC)"),
        time_column("last_seen", "last seen (UTC)"),
    )
    list_filter = ("source", "disabled", "is_primary")
    search_fields = ("name", "label", "hash")


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("date", "model", "provider_name", "key_hash", money_column("usage", "usage"), "requests", "final")
    list_filter = (("date", admin.DateFieldListFilter), "provider_name", "final")
    search_fields = ("model", "api_key_hash")
    date_hierarchy = "date"

    @admin.display(description="key hash", ordering="api_key_hash")
    def key_hash(self, obj):
        return obj.api_key_hash[:12] or "(all keys)"


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ("created", "kind", "level", "message", "user")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = (
        time_column("opened_at", "opened (UTC)"),
        "key",
        "condition",
        "level",
        "short_message",
        time_column("resolved_at", "resolved (UTC)"),
        "acknowledged_by",
    )
    list_filter = ("condition", "level", ("opened_at", admin.DateFieldListFilter))
    search_fields = ("message", "key__name")
    list_select_related = ("key",)
    inlines = [AlertEventInline]

    @admin.display(description="message")
    def short_message(self, obj):
        return truncatechars(obj.message, 80)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        time_column("created", "created (UTC)"),
        "short_channel",
        "status",
        "attempts",
        "duration_ms",
        "short_error",
    )
    list_filter = ("status", ("created", admin.DateFieldListFilter))
    search_fields = ("channel", "error")

    @admin.display(description="channel", ordering="channel")
    def short_channel(self, obj):
        return truncatechars(obj.channel, 50)

    @admin.display(description="error")
    def short_error(self, obj):
        return truncatechars(obj.error, 80)


class TaskDeliveryInline(admin.TabularInline):
    model = TaskDelivery
    extra = 0
    can_delete = False
    fields = ("created", "event", "attempt", "status", "http_status", "error", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AgentTask)
class AgentTaskAdmin(ReadOnlyAdmin):
    """Agents change tasks through /api/tasks/ and the MCP tools (claims, notes, webhooks); here they are read."""

    list_display = (
        time_column("created_at", "created (UTC)"),
        "kind",
        "state",
        "short_title",
        "key",
        "claimed_by",
        time_column("done_at", "done (UTC)"),
    )
    list_filter = ("state", "kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("title", "body", "claimed_by", "note")
    list_select_related = ("key",)
    inlines = [TaskDeliveryInline]

    @admin.display(description="title")
    def short_title(self, obj):
        return truncatechars(obj.title, 80)


@admin.register(TaskDelivery)
class TaskDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        time_column("created", "created (UTC)"),
        "task",
        "event",
        "attempt",
        "status",
        "http_status",
        "duration_ms",
        "short_error",
    )
    list_filter = ("status", "event", ("created", admin.DateFieldListFilter))
    search_fields = ("error", "message_id")

    @admin.display(description="error")
    def short_error(self, obj):
        return truncatechars(obj.error, 80)


@admin.register(CatalogueFetch)
class CatalogueFetchAdmin(ReadOnlyAdmin):
    list_display = (time_column("started_at", "started"), "ok", "models_count", "price_changes", "error")
    list_filter = ("ok",)


class CataloguePriceInline(admin.TabularInline):
    model = CataloguePrice
    extra = 0
    can_delete = False
    fields = ("changed_at", "first", "prompt_price", "completion_price", "input_cache_read_price", "request_price")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CatalogueModel)
class CatalogueModelAdmin(ReadOnlyAdmin):
    list_display = ("model_id", "context_length", "prompt_price", "completion_price", "expiration_date", "listed")
    list_filter = ("listed", ("expiration_date", admin.EmptyFieldListFilter))
    search_fields = ("model_id", "name")
    inlines = [CataloguePriceInline]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Append-only: who acted, when, from where, on what. Pruned only by the retention policy."""

    list_display = (time_column("created", "when (UTC)"), "actor", "action", "target", "address", "token_role")
    list_filter = ("action", ("created", admin.DateFieldListFilter))
    search_fields = ("actor", "action", "target", "address")
    date_hierarchy = "created"


# django-q2's own admin lets a superuser schedule any dotted function (os.system included), delete the monitoring
# schedule, or resubmit tasks: here its schedules and tasks are shown, never written. The schedules follow their
# settings (monitoring/schedule.py).
for model, q_model_admin in (
    (Schedule, q_admin.ScheduleAdmin),
    (Success, q_admin.TaskAdmin),
    (Failure, q_admin.FailAdmin),
    (OrmQ, q_admin.QueueAdmin),
):
    if admin.site.is_registered(model):  # the queue's admin only exists with the ORM broker
        admin.site.unregister(model)
        admin.site.register(model, type(q_model_admin.__name__, (NoWrites, q_model_admin), {}))
