from django.urls import path, re_path
from django.views.generic import RedirectView

from . import api, api_tasks, exports, views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="monitoring-health", permanent=False), name="monitoring-index"),
    path("health/", views.health, name="monitoring-health"),
    path("health/check-now/", views.check_now, name="monitoring-check-now"),
    path("financial/", views.financial, name="monitoring-financial"),
    path("alerts/", views.alerts, name="monitoring-alerts"),
    path("alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge, name="monitoring-alert-acknowledge"),
    path("alerts/<int:alert_id>/snooze/", views.alert_snooze, name="monitoring-alert-snooze"),
    path("alerts/<int:alert_id>/unacknowledge/", views.alert_unacknowledge, name="monitoring-alert-unacknowledge"),
    path("alerts/<int:alert_id>/unsnooze/", views.alert_unsnooze, name="monitoring-alert-unsnooze"),
    path("alerts/send-test/", views.send_test, name="monitoring-send-test"),
    path("export/credit-log.csv", exports.credit_log_csv, name="monitoring-export-credit-log"),
    path("export/spend-by-model.csv", exports.spend_by_model_csv, name="monitoring-export-spend-by-model"),
    path("export/spend-by-key.csv", exports.spend_by_key_csv, name="monitoring-export-spend-by-key"),
    path("healthz", api.healthz, name="monitoring-healthz"),
    path("metrics", api.metrics, name="monitoring-metrics"),
    path("api/status/", api.status_view, name="monitoring-api-status"),
    path("api/history/", api.history, name="monitoring-api-history"),
    path("api/models/advice", api.models_advice, name="monitoring-api-models-advice"),
    path("api/tasks/", api_tasks.task_list, name="monitoring-api-tasks"),
    re_path(  # with or without the trailing slash: agents post to /api/tasks/7/claim
        r"^api/tasks/(?P<task_id>[0-9]+)/(?P<action>claim|complete|dismiss)/?$",
        api_tasks.task_action,
        name="monitoring-api-task-action",
    ),
]
