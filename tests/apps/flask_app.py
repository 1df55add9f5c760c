"""A small real Flask app for the framework smoke tests (tests/frameworks.rs).

Served as ``flask_app:app`` with ``--virtualenv target/test-venv``.
Every view answers with something a test can check exactly: echoed data,
lengths and SHA-256 digests of what the app actually received.
"""

import hashlib

import flask
from flask import (
    Flask,
    jsonify,
    make_response,
    redirect,
    request,
    stream_with_context,
    url_for,
)

app = Flask(__name__)


def digest(data):
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/hello/<name>")
def hello(name):
    return f"Hello, {name}!"


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, double=item_id * 2, q=request.args.get("q"))


@app.get("/json")
def json_view():
    return jsonify(
        framework="flask",
        ok=True,
        numbers=[1, 2, 3],
        text="h\u00e9llo",
        # Where Flask was imported from: the --virtualenv must win.
        module=flask.__file__,
    )


@app.post("/echo-json")
def echo_json():
    data = request.get_json()
    return jsonify(received=data, content_type=request.content_type)


@app.post("/form")
def form():
    return jsonify(
        form={k: request.form.getlist(k) for k in request.form},
        content_type=request.mimetype,
    )


@app.post("/upload")
def upload():
    f = request.files.get("file")
    if f is None:
        return jsonify(error="no file", files=list(request.files)), 400
    data = f.read()
    return jsonify(
        filename=f.filename,
        mimetype=f.mimetype,
        description=request.form.get("description"),
        **digest(data),
    )


@app.post("/raw")
def raw():
    data = request.get_data()
    return jsonify(
        content_length=request.environ.get("CONTENT_LENGTH"),
        transfer_encoding=request.environ.get("HTTP_TRANSFER_ENCODING"),
        **digest(data),
    )


@app.get("/stream")
def stream():
    count = request.args.get("n", 50, type=int)

    @stream_with_context
    def generate():
        # request is only usable here thanks to stream_with_context.
        prefix = request.args.get("prefix", "line")
        for i in range(count):
            yield f"{prefix} {i}\n"

    return app.response_class(generate(), mimetype="text/plain")


@app.get("/cookie/set")
def cookie_set():
    resp = make_response("cookie set")
    resp.set_cookie("flavour", "chocolate-chip", httponly=True, samesite="Lax")
    return resp


@app.get("/cookie/get")
def cookie_get():
    return jsonify(flavour=request.cookies.get("flavour"))


@app.get("/redirect")
def go():
    return redirect(url_for("hello", name="redirected"))


@app.get("/login")
def login():
    # An absolute URL, built from the request's scheme and host: behind a
    # TLS-terminating proxy it must say https (tests/forwarded.rs).
    return redirect(url_for("hello", name="back", _external=True))


@app.get("/client")
def client():
    return f"{request.remote_addr} {request.scheme} {request.host_url}"
