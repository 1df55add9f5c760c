"""A small Flask JSON endpoint for the load harness: GET /json."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/json")
def json_endpoint():
    return jsonify(message="Hello, world!", items=[1, 2, 3], ok=True)


application = app
