"""Screenshots of ready previews (app/usecases/deploy/screenshots.py): the latest set of each
preview, one row per page and viewport, kept to compare the next set with (the preview's own
next commit, or a PR whose base branch this preview shows). `png` is NULL for a page that
gave no picture; `changed_share` and `compared_sha` say what the picture was compared with;
the attachment columns say where the PR comment shows it and its overlay."""


def statements(t):
    return [
        f"""CREATE TABLE screenshot (
            id {t.pk},
            preview_id INTEGER NOT NULL REFERENCES preview (id) ON DELETE CASCADE,
            sha VARCHAR(40) NOT NULL,
            page VARCHAR(256) NOT NULL,
            viewport VARCHAR(16) NOT NULL,
            png {t.blob},
            taken_at {t.datetime} NOT NULL,
            compared_sha VARCHAR(40),
            compared_with VARCHAR(255),
            changed_share DOUBLE PRECISION,
            attachment_id BIGINT,
            attachment_url VARCHAR(1024),
            overlay_attachment_id BIGINT,
            overlay_url VARCHAR(1024)
        )""",
        "CREATE UNIQUE INDEX screenshot_preview_id_sha_page_viewport ON screenshot (preview_id, sha, page, viewport)",
    ]
