"""When Gitea stopped showing a repository to this service (app/usecases/operations/lifecycle.py,
follow_repositories): a 404 for a deleted repository and for one the bot lost access to look
alike, so its previews are torn down only once it has stayed missing for
REPOSITORY_GONE_AFTER. NULL: Gitea showed it at the last check."""


def statements(t):
    return [f"ALTER TABLE repository ADD COLUMN missing_since {t.datetime}"]
