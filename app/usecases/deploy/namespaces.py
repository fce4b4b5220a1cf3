"""A preview's names and its namespace, as every job finds them again."""

from __future__ import annotations

import re

from app.domain.k8s.labels import LABEL_PREVIEW_ID
from app.domain.naming import PreviewNames, preview_names
from app.models import Preview
from app.settings import Settings
from app.usecases.ports import Cluster


def names_for(settings: Settings, preview: Preview) -> PreviewNames:
    """The preview's names, from the key it was created under (a renamed repository keeps them)."""
    key = preview.names_key or preview.target_key
    repository = re.split(r"[#@]", key, maxsplit=1)[0]  # owner/name#12 or owner/name@branch
    return preview_names(repository, key, preview.pr_number, preview.branch, settings.preview_domain)


def owned_or_free(labels: dict[str, str] | None, preview_id: int) -> bool:
    """A namespace with these labels (None: there is none) is this preview's to write into or delete."""
    return labels is None or labels.get(LABEL_PREVIEW_ID) == str(preview_id)


def ours_or_free(kube: Cluster, namespace: str, preview_id: int) -> bool:
    """Before writing into or deleting a namespace: it does not exist, or it carries this preview's id."""
    return owned_or_free(kube.namespace_labels(namespace), preview_id)
