"""What the worker does to one preview, under its lease and within its slot: decide whether its
code may be built (trust), deploy it (pipeline, building, preview_database), tear it down
(teardown), tell Gitea (reporting)."""
