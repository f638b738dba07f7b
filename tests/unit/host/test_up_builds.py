"""What `orch up` builds when an image is missing (orchestrator/host/images.py
recipe_of, build_missing; backends/local.py provide_images), without an engine: the
builders and the image lookup are replaced by recorders. The real build by `orch up`
is in tests/integration/test_gateways.py."""

from __future__ import annotations

import pytest

from orchestrator.backends import local
from orchestrator.errors import ImageError
from orchestrator.host import images
from orchestrator.host.images import ImageResult, Recipe, recipe_of


@pytest.mark.parametrize(
    ("tag", "recipe"),
    [
        ("orch/openclaw-gateway:2026.9.6", Recipe("2026.9.6", False)),
        ("orch/openclaw-gateway:2026.9.6-browser", Recipe("2026.9.6", True)),
        ("orch/openclaw-gateway:2026.10.0-beta.1", Recipe("2026.10.0-beta.1", False)),
        ("orch/openclaw-gateway:2026.10.0-beta.1-browser", Recipe("2026.10.0-beta.1", True)),
    ],
)
def test_orchs_own_gateway_and_browser_tags_have_a_recipe(tag: str, recipe: Recipe) -> None:
    assert recipe_of(tag) == recipe


@pytest.mark.parametrize(
    "tag",
    [
        "orch/openclaw-gateway:it-second-3fa2c1",  # a test's retag: not a version
        "orch/openclaw-gateway:latest",
        "orch/openclaw-gateway:2026.9.6-browser-browser",
        "orch/openclaw-gateway",
        "orch/it-broken:2026.9.6",
        "example.com/orch/openclaw-gateway:2026.9.6",
        "me/gateway:1.2.3",
    ],
)
def test_any_other_image_has_no_recipe(tag: str) -> None:
    assert recipe_of(tag) is None


class Builders:
    """The builders, recording what they would build; `present`: the engine's tags."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.present: set[str] = set()

    def gateway(self, progress=None, version="x", force=False) -> list[ImageResult]:
        self.calls.append(("gateway", version))
        return [ImageResult(images.gateway_tag(version), "built", 1.0, 1)]

    def variant(self, force, progress, version) -> ImageResult:
        self.calls.append(("variant only", version))
        return ImageResult(images.browser_tag(version), "built", 1.0, 1)

    def both(self, progress=None, version="x", force=False) -> list[ImageResult]:
        self.calls.append(("gateway and variant", version))
        return [
            ImageResult(images.gateway_tag(version), "built", 1.0, 1),
            ImageResult(images.browser_tag(version), "built", 1.0, 1),
        ]


@pytest.fixture
def builders(monkeypatch: pytest.MonkeyPatch) -> Builders:
    recorder = Builders()
    monkeypatch.setattr(images, "build_images", recorder.gateway)
    monkeypatch.setattr(images, "_ensure_browser", recorder.variant)
    monkeypatch.setattr(images, "build_browser_image", recorder.both)
    monkeypatch.setattr(
        images, "inspect_image", lambda tag: {} if tag in recorder.present else None
    )
    return recorder


def test_a_missing_gateway_image_is_built_for_its_version(builders: Builders) -> None:
    images.build_missing(["orch/openclaw-gateway:2026.9.5"])
    assert builders.calls == [("gateway", "2026.9.5")]


def test_a_missing_variant_is_built_from_the_gateway_that_is_here(builders: Builders) -> None:
    builders.present.add("orch/openclaw-gateway:2026.9.6")
    images.build_missing(["orch/openclaw-gateway:2026.9.6-browser"])
    assert builders.calls == [("variant only", "2026.9.6")]


def test_a_missing_variant_without_its_gateway_gets_both(builders: Builders) -> None:
    images.build_missing(["orch/openclaw-gateway:2026.9.6-browser"])
    assert builders.calls == [("gateway and variant", "2026.9.6")]


def test_an_image_orch_cannot_build_is_refused_before_anything_is_built(builders: Builders) -> None:
    with pytest.raises(ImageError) as info:
        images.build_missing(["orch/openclaw-gateway:2026.9.6-browser", "me/gateway:1"])
    assert "me/gateway:1 is not on this engine and orch cannot build it" in str(info.value)
    assert "docker load" in info.value.hint and "--image orch/openclaw-gateway:" in info.value.hint
    assert builders.calls == []


def test_progress_names_each_image_before_its_build(builders: Builders) -> None:
    lines: list[str] = []
    images.build_missing(["orch/openclaw-gateway:2026.9.5"], lines.append)
    assert lines == ["orch/openclaw-gateway:2026.9.5 is not on this engine: building it"]


# --- backends/local.provide_images: the decision `orch up` takes ------------------------


def test_up_builds_nothing_when_nothing_is_missing(builders: Builders) -> None:
    assert local.provide_images({}, build=True) == []
    assert builders.calls == []


def test_up_reports_the_images_it_built_and_shows_build_progress_per_image(
    builders: Builders,
) -> None:
    said: list[tuple[str, str]] = []
    rows = local.provide_images(
        {"orch/openclaw-gateway:2026.9.5": ["main"]},
        build=True,
        progress=lambda p, m: said.append((p, m)),
    )
    assert rows == [{"tag": "orch/openclaw-gateway:2026.9.5", "action": "built", "seconds": 1.0}]
    assert said == [("images", "orch/openclaw-gateway:2026.9.5 is not on this engine: building it")]


def test_no_build_refuses_a_missing_image_and_says_how_to_get_it(builders: Builders) -> None:
    with pytest.raises(ImageError) as info:
        local.provide_images({"orch/openclaw-gateway:2026.9.6-browser": ["web"]}, build=False)
    assert info.value.message == (
        "image orch/openclaw-gateway:2026.9.6-browser (profile web) is not on this engine"
        " and --no-build was given; nothing was created"
    )
    assert "without --no-build" in info.value.hint
    assert info.value.exit_code == 6
    assert builders.calls == []


def test_no_build_of_an_image_orch_cannot_build_says_that_first(builders: Builders) -> None:
    with pytest.raises(ImageError) as info:
        local.provide_images({"me/gateway:1": ["a", "b"]}, build=False)
    assert info.value.message.startswith("image me/gateway:1 (profile a, b) is not on this")
    assert "orch cannot build it" in info.value.message
    assert "`orch setup a --image orch/openclaw-gateway:" in info.value.hint
