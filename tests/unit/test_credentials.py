"""The generated htpasswd line, loaded by a real nginx (Debian's) with auth_basic_user_file."""

import os
import shutil
import subprocess

import pytest
import requests

from app.domain.credentials import USERNAME, htpasswd_line, new_password
from tests.testbed.servers import die_with_parent, free_port, stop_process, wait_for_port

NGINX_CONF = """
{user}
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 16; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_basic "Preview environment";
      auth_basic_user_file {prefix}/auth;
      root {prefix}/site;
    }}
  }}
}}
"""


def test_passwords_are_random_and_long():
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 20 for p in passwords)


@pytest.fixture(params=["apr1", "sha"])
def nginx_with_auth(request, tmp_path):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.fail("nginx is not installed: `make deps` installs nginx-light")
    password = new_password()
    (tmp_path / "auth").write_text(htpasswd_line(USERNAME, password, request.param) + "\n")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("the preview\n")
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(user=user, prefix=tmp_path, port=port))
    process = subprocess.Popen(
        [binary, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}/", password
    stop_process(process)


def test_nginx_accepts_the_generated_line_of_each_scheme(nginx_with_auth):
    url, password = nginx_with_auth
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=(USERNAME, "wrong-password"), timeout=5).status_code == 401
    assert requests.get(url, auth=("someone", password), timeout=5).status_code == 401
    answer = requests.get(url, auth=(USERNAME, password), timeout=5)
    assert answer.status_code == 200
    assert answer.text == "the preview\n"


def test_the_sha_scheme_is_apaches_sha1_format():
    # The example every htpasswd reference gives: "password" -> {SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=
    assert htpasswd_line("user", "password", "sha") == "user:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
