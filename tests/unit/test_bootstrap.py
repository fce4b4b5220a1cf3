"""The composition root: which adapters the settings pick, and what a missing one says."""

from __future__ import annotations

import dataclasses

import pytest

from app.adapters.gitea import Gitea
from app.bootstrap import bootstrap
from app.settings import Settings
from app.usecases.ports import ClusterNotConfigured, GiteaError, GiteaNotConfigured, NoGitea


def test_without_gitea_url_gitea_is_nogitea_which_says_so_on_every_call():
    services = bootstrap(Settings())
    assert isinstance(services.gitea, NoGitea)
    assert not services.gitea.configured
    with pytest.raises(GiteaNotConfigured, match="GITEA_URL is not configured: cannot pull request"):
        services.gitea.pull_request("acme/shop", 1)
    # A GiteaError like any other: the callers that handle Gitea failing handle this too.
    assert issubclass(GiteaNotConfigured, GiteaError)


def test_with_gitea_url_gitea_is_the_adapter():
    services = bootstrap(Settings(gitea_url="http://gitea.test", gitea_token="t" * 20))
    assert isinstance(services.gitea, Gitea)
    assert services.gitea.configured


def test_a_given_adapter_replaces_the_one_the_settings_name():
    given = NoGitea()
    assert bootstrap(Settings(gitea_url="http://gitea.test"), gitea=given).gitea is given


def test_the_cluster_is_connected_on_first_use_and_only_then_says_it_is_missing(tmp_path):
    services = bootstrap(Settings(kubeconfig=str(tmp_path / "no-such-kubeconfig")))
    with pytest.raises(ClusterNotConfigured, match="no Kubernetes cluster"):
        _ = services.kube


def test_the_cluster_is_connected_once_and_only_when_first_used():
    connected = []

    def connect() -> object:
        connected.append(object())
        return connected[-1]

    services = dataclasses.replace(bootstrap(Settings()), connect_cluster=connect)
    assert connected == []  # a web process that never reads the cluster never connects
    first = services.kube
    assert services.kube is first
    assert connected == [first]


def test_a_given_cluster_is_the_one_the_services_use():
    given = object()
    assert bootstrap(Settings(), kube=given).kube is given  # type: ignore[arg-type]
