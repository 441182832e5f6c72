"""The dashboard pages (function-based views building a ctx dict)."""

from django.http import HttpResponse


def health(request):
    return HttpResponse("System Health (to be built)")


def check_now(request):
    return HttpResponse(status=501)


def financial(request):
    return HttpResponse("Financial (to be built)")


def alerts(request):
    return HttpResponse("Alerts (to be built)")


def alert_acknowledge(request, alert_id):
    return HttpResponse(status=501)


def alert_snooze(request, alert_id):
    return HttpResponse(status=501)


def send_test(request):
    return HttpResponse(status=501)
