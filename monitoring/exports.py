"""CSV exports of the credit log and of spend by model and by key."""

from django.http import HttpResponse


def credit_log_csv(request):
    return HttpResponse(status=501)


def spend_by_model_csv(request):
    return HttpResponse(status=501)


def spend_by_key_csv(request):
    return HttpResponse(status=501)
