"""App factories and a bare-module app, for the APP argument forms.

``factory_app:create_app()`` and ``'factory_app:create_app("x", n=2)'`` return
an app whose body reports the factory's arguments with ``ascii()``;
``factory_app`` alone resolves to ``application``; ``broken_factory()`` raises.
"""


def create_app(*args, **kwargs):
    report = f"args={ascii(args)} kwargs={ascii(dict(sorted(kwargs.items())))}\n"

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [report.encode("ascii")]

    return app


def broken_factory():
    raise RuntimeError("factory-failure-marker: the factory refused to build")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"bare module application\n"]
