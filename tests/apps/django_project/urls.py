from django.urls import path

from . import views

urlpatterns = [
    path("hello/<str:name>", views.hello, name="hello"),
    path("items/<int:item_id>", views.item),
    path("json", views.json_view),
    path("echo-json", views.echo_json),
    path("form", views.form),
    path("upload", views.upload),
    path("raw", views.raw),
    path("stream", views.stream),
    path("cookie/set", views.cookie_set),
    path("cookie/get", views.cookie_get),
    path("redirect", views.go),
]
