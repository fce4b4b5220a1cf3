"""`python -m app.mcp` (stdio) or `python -m app.mcp --http [--bind HOST:PORT]` (streamable HTTP)."""

from __future__ import annotations

import argparse
import os
import sys

from app import bootstrap
from app.mcp.server import build_server, http_caller_token
from app.mcp.tools import PreviewTools
from app.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gitea-previews-mcp", description="The preview service's MCP server.")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--bind", default=os.environ.get("MCP_BIND", "127.0.0.1:8001"), help="HOST:PORT for --http")
    args = parser.parse_args(argv)
    bootstrap.configure_logging()  # to stderr: stdout is the stdio transport
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"configuration error: {error}")
    tools = PreviewTools(bootstrap.start(settings))
    if not args.http:
        token = os.environ.get("PREVIEW_MCP_TOKEN")
        if not token:
            sys.exit("PREVIEW_MCP_TOKEN must hold an API token (flask tokens create) for the stdio server")
        build_server(tools, lambda: token).run("stdio")
        return
    host, _, port = args.bind.rpartition(":")
    url = f"http://{args.bind}/mcp"
    build_server(tools, http_caller_token, http_url=url).run("streamable-http", host=host, port=int(port))


if __name__ == "__main__":
    main()
