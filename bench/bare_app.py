"""The baseline of bench.intake_overhead: a Flask endpoint that answers 202 and does nothing else."""

from flask import Flask

app = Flask(__name__)


@app.post("/webhooks/gitea")
def accepted() -> tuple[str, int]:
    return "", 202
