"""Views mirroring tests/apps/flask_app.py, so both suites check the same
things: echoed data, and lengths and SHA-256 digests of what was received."""

import hashlib
import json

import django
from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


def digest(data):
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@require_GET
def hello(request, name):
    return HttpResponse(f"Hello, {name}!", content_type="text/plain; charset=utf-8")


@require_GET
def item(request, item_id):
    return JsonResponse({"id": item_id, "double": item_id * 2, "q": request.GET.get("q")})


@require_GET
def json_view(request):
    return JsonResponse(
        {
            "framework": "django",
            "ok": True,
            "numbers": [1, 2, 3],
            "text": "h\u00e9llo",
            # Where Django was imported from: the --virtualenv must win.
            "module": django.__file__,
        }
    )


@csrf_exempt
@require_POST
def echo_json(request):
    try:
        data = json.loads(request.body)
    except ValueError as e:
        return HttpResponseBadRequest(f"bad json: {e}; body={request.body[:200]!r}")
    return JsonResponse({"received": data, "content_type": request.content_type})


@csrf_exempt
@require_POST
def form(request):
    return JsonResponse(
        {
            "form": {k: request.POST.getlist(k) for k in request.POST},
            "content_type": request.content_type,
        }
    )


@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES.get("file")
    if f is None:
        return JsonResponse({"error": "no file", "files": list(request.FILES)}, status=400)
    data = f.read()
    return JsonResponse(
        {
            "filename": f.name,
            "mimetype": f.content_type,
            "description": request.POST.get("description"),
            **digest(data),
        }
    )


def request_body(request):
    """request.body, also for chunked uploads.

    Django 5.2 reads CONTENT_LENGTH only and ignores wsgi.input_terminated
    (Django ticket #35838), so a chunked upload looks empty to request.body
    under any streaming WSGI server (aserve, gunicorn). Apps that accept
    chunked uploads read wsgi.input to its end, which PEP 3333 servers that
    set wsgi.input_terminated allow.
    """
    meta = request.META
    if "CONTENT_LENGTH" not in meta and meta.get("wsgi.input_terminated"):
        return meta["wsgi.input"].read()
    return request.body


@csrf_exempt
@require_POST
def raw(request):
    data = request_body(request)
    return JsonResponse(
        {
            "content_length": request.META.get("CONTENT_LENGTH"),
            "transfer_encoding": request.META.get("HTTP_TRANSFER_ENCODING"),
            "input_terminated": request.META.get("wsgi.input_terminated"),
            **digest(data),
        }
    )


@require_GET
def stream(request):
    count = int(request.GET.get("n", 50))
    prefix = request.GET.get("prefix", "line")

    def generate():
        for i in range(count):
            yield f"{prefix} {i}\n"

    return StreamingHttpResponse(generate(), content_type="text/plain; charset=utf-8")


@require_GET
def cookie_set(request):
    resp = HttpResponse("cookie set", content_type="text/plain")
    resp.set_cookie("flavour", "chocolate-chip", httponly=True, samesite="Lax")
    return resp


@require_GET
def cookie_get(request):
    return JsonResponse({"flavour": request.COOKIES.get("flavour")})


@require_GET
def go(request):
    return redirect("hello", name="redirected")
