"""Machine endpoints: liveness probe, Prometheus metrics, and the JSON API."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse


@login_not_required
def healthz(request):
    return JsonResponse({"status": "ok"})


@login_not_required
def metrics(request):
    return HttpResponse(status=501)


@login_not_required
def status(request):
    return HttpResponse(status=501)


@login_not_required
def history(request):
    return HttpResponse(status=501)
