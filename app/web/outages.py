"""What the web answers when the database cannot be reached: 503 and a retry hint, not a 500.

Gitea shows the failed delivery (redeliver it from there); an API client or agent sees
it is worth trying again.
"""

from __future__ import annotations

import logging

import peewee
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

log = logging.getLogger(__name__)


def _database_unavailable(error: Exception) -> ResponseReturnValue:
    log.error("database unavailable: %s", error)
    response = jsonify(error="the service's database is unavailable; try again shortly")
    response.headers["Retry-After"] = "10"
    return response, 503


def install(app: Flask) -> None:
    app.register_error_handler(peewee.OperationalError, _database_unavailable)
    app.register_error_handler(peewee.InterfaceError, _database_unavailable)
