"""Liveness and readiness probes: open to everyone, no secrets in the answers."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.db import database
from app.web import context

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


def _database_reachable() -> bool:
    try:
        database.execute_sql("SELECT 1")
        return True
    except Exception:  # any driver error means "not ready"
        return False


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    failing = []
    if not _database_reachable():
        failing.append("database")
    if not context.services().queue.ping():
        failing.append("redis")
    if failing:
        return jsonify(status="unavailable", failing=failing), 503
    return jsonify(status="ready")
