"""The screenshot Job's spec, the reading of its log, and the visual diff of two pictures."""

from __future__ import annotations

import base64
import io
import subprocess

import pytest
from PIL import Image

from app.domain import visual_diff
from app.domain.k8s import screenshots

SHA = "0123456789abcdef" * 2 + "01234567"
PAGES = ("/", "/login?next=/a&b=(1)")


def png(size=(1280, 800), colour=(255, 255, 255), box=None, box_colour=(200, 0, 0)) -> bytes:
    image = Image.new("RGB", size, colour)
    if box:
        image.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), box_colour), box[:2])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_job_runs_one_unprivileged_pod_with_the_pages_as_arguments_never_as_shell_text():
    job = screenshots.screenshot_job("preview-x", 7, SHA, "chromium:1", "http://preview-x-app", PAGES, 180)
    assert job["metadata"]["name"] == f"screenshots-{SHA[:12]}"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 180)
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["limits"]["memory"] == "1Gi"
    command = container["command"]
    assert command[:2] == ["sh", "-c"]
    assert command[3:] == ["screenshots", *PAGES]
    assert all(page not in command[2] for page in PAGES[1:])
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["SHOT_BASE"] == "http://preview-x-app"
    assert env["SHOT_VIEWPORTS"] == "desktop:1280,800 phone:390,844"


def test_the_script_prints_what_the_reader_reads(tmp_path):
    """The script itself, run by the machine's sh with a stand-in `chromium` that draws a
    picture for one page and fails on the other: the reader gets both outcomes back."""
    picture = png((390, 844))
    (tmp_path / "picture.png").write_bytes(picture)
    fake = tmp_path / "chromium"
    fake.write_text(
        "#!/bin/sh\n"
        'for arg; do case "$arg" in --screenshot=*) out=${arg#--screenshot=};; http*) url=$arg;; esac; done\n'
        f'case "$url" in *login*) exit 1;; esac\ncp {tmp_path}/picture.png "$out"\n'
    )
    fake.chmod(0o755)
    job = screenshots.screenshot_job("ns", 1, SHA, "img", "http://app", PAGES, 60)
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    ran = subprocess.run(
        container["command"],
        env={**env, "PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shots = screenshots.read_log(ran.stdout, PAGES)
    assert [(s.page, s.viewport, s.png is not None) for s in shots] == [
        ("/", "desktop", True),
        ("/", "phone", True),
        (PAGES[1], "desktop", False),
        (PAGES[1], "phone", False),
    ]
    assert shots[0].png == picture


def test_the_reader_ignores_what_is_not_the_script_s_and_drops_what_does_not_decode():
    good = base64.encodebytes(png()).decode()
    log = (
        "chromium: some warning\n"
        f"previews-shot 0 desktop\n{good}previews-end\n"
        "previews-shot 9 desktop\nAAAA\npreviews-end\n"  # no page 9 was asked for
        "previews-shot 1 tablet\nAAAA\npreviews-end\n"  # nor a tablet
        "previews-shot 1 phone\n!!not base64!!\npreviews-end\n"
        "previews-shot 0 phone\nAAAA\n"  # cut off: no end
    )
    shots = screenshots.read_log(log, PAGES)
    assert [(s.page, s.viewport, s.png is not None) for s in shots] == [
        ("/", "desktop", True),
        (PAGES[1], "phone", False),
    ]


def test_only_a_png_of_the_asked_size_is_taken():
    assert visual_diff.checked_png(png(), (1280, 800))
    with pytest.raises(visual_diff.NotAScreenshot, match="1x1 pixels"):
        visual_diff.checked_png(png((1, 1)), (1280, 800))
    with pytest.raises(visual_diff.NotAScreenshot, match="not a readable PNG"):
        visual_diff.checked_png(b"GIF89a" + b"\0" * 100, (1280, 800))
    with pytest.raises(visual_diff.NotAScreenshot, match="not a readable PNG"):
        visual_diff.checked_png(png()[:200], (1280, 800))


def test_the_same_picture_changed_nothing_and_a_recoloured_box_is_its_share_highlighted():
    before = png(box=(0, 0, 128, 80))
    assert visual_diff.compare(before, png(box=(0, 0, 128, 80))) == visual_diff.Comparison(0.0, None)
    # A shade of anti-aliasing is no change.
    assert visual_diff.compare(before, png(box=(0, 0, 128, 80), box_colour=(205, 4, 4))).changed_share == 0.0

    after = png(box=(0, 0, 128, 80), box_colour=(0, 0, 200))
    comparison = visual_diff.compare(before, after)
    assert comparison.changed_share == pytest.approx(0.01)  # a tenth by a tenth of the page
    with Image.open(io.BytesIO(comparison.overlay_png)) as overlay:
        assert overlay.size == (1280, 800)
        assert overlay.getpixel((10, 10)) == visual_diff.HIGHLIGHT
        assert overlay.getpixel((600, 600)) == (255, 255, 255)  # unchanged white stays white
