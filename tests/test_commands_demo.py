# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""Tests of the CAST demo app (`modeling_cast.commands.demo`, `app/app.py`): its functions on bad uploads, and the
running app driven in headless Chromium through Selenium.

The browser tests need Debian's `chromium` and `chromium-driver` packages and the `demo` extra (Gradio, Selenium);
`make test` installs them. They save a screenshot to `$CAST_TEST_ARTIFACTS` (default `outputs/test_artifacts/`).
`CAST_APP_TEST_MODEL` replaces their untrained tiny model by a given folder (e.g. the `cast-demo` default model), to
make a screenshot worth showing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from conftest import REPO_ROOT, TINY_CLASSIFIER_NUM_SEGMENTS as NUM_SEGMENTS
from modeling_cast.commands import demo
from processing.visualization_cast import DEFAULT_GAP, hierarchy_colors


PAGE_TIMEOUT = 120  # seconds: the first segmentation loads the model on 2 shared CPU cores
MAX_UPLOAD_MB = 1
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def session(model_dir) -> demo.DemoSession:
    return demo.DemoSession(str(model_dir))


# ---------------------------------------------------------------------------------------------------------------
# The app's functions, without a browser
# ---------------------------------------------------------------------------------------------------------------


def test_read_image_file_rejects_files_that_are_not_images(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image\n" * 20)
    with pytest.raises(ValueError, match="notes.png is not an image that can be read"):
        demo.read_image_file(text)
    truncated = tmp_path / "truncated.jpg"
    buffer = io.BytesIO()
    Image.fromarray(skimage_data.chelsea()).save(buffer, format="JPEG")
    truncated.write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(ValueError, match="truncated.jpg is not an image that can be read"):
        demo.read_image_file(truncated)
    with pytest.raises(TypeError, match="`path` must be a file path"):
        demo.read_image_file(np.zeros((4, 4, 3), dtype=np.uint8))


def test_read_image_file_refuses_huge_images_before_decoding(tmp_path, monkeypatch):
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 6000)).save(huge)  # 48 megapixels in a few kilobytes
    with pytest.raises(ValueError, match=r"huge.png has 8000 x 6000 pixels; at most 40,000,000 are accepted"):
        demo.read_image_file(huge)

    monkeypatch.setattr(demo, "MAX_PIXELS", 100)
    small = tmp_path / "small.png"
    Image.new("RGB", (11, 10)).save(small)
    with pytest.raises(ValueError, match="has 11 x 10 pixels; at most 100 are accepted"):
        demo.read_image_file(small)


def test_read_image_file_scales_16_bit_and_repeats_grayscale(tmp_path):
    gray = np.ascontiguousarray(skimage_data.camera()[::4, ::4])
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    expected = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_array_equal(demo.read_image_file(tmp_path / "gray.png"), expected)
    np.testing.assert_array_equal(demo.read_image_file(tmp_path / "sixteen.png"), expected)  # scaled, not clipped
    rgba = np.dstack([skimage_data.chelsea(), np.full(skimage_data.chelsea().shape[:2], 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(demo.read_image_file(tmp_path / "rgba.png"), skimage_data.chelsea())


def test_read_image_file_shrinks_large_photos_to_the_working_size(tmp_path):
    Image.new("RGB", (2000, 1000), (10, 200, 30)).save(tmp_path / "wide.png")
    pixels = demo.read_image_file(tmp_path / "wide.png")
    assert pixels.shape == (demo.WORKING_SIDE // 2, demo.WORKING_SIDE, 3)


def test_session_segments_draws_and_exports_a_photo(session, tmp_path):
    path = tmp_path / "chelsea.png"
    Image.fromarray(skimage_data.chelsea()).save(path)
    segmented = session.segment(path, "")  # an empty model field means the default model
    height, width = skimage_data.chelsea().shape[:2]
    assert segmented.hierarchy.shape == (len(NUM_SEGMENTS), height, width)

    level_view, overlay = session.draw(segmented, 1)
    assert level_view.size == (width, height)
    assert overlay.width == 3 * width + 2 * DEFAULT_GAP and overlay.height > height  # captions below
    finest_view, _ = session.draw(segmented, 0)
    assert finest_view.tobytes() != level_view.tobytes()
    lit_view, lit_overlay = session.draw(segmented, 1, selected=(1, 10, 10))
    assert lit_view.tobytes() != level_view.tobytes() and lit_overlay.size == overlay.size
    assert "level 1:" in session.summary(segmented)
    with pytest.raises(ValueError, match=r"`level` must be in \[0, 1\], got 2"):
        session.draw(segmented, 2)

    export_dir = tmp_path / "export"
    export_dir.mkdir()
    with zipfile.ZipFile(session.export(segmented, export_dir)) as archive:
        assert sorted(archive.namelist()) == [
            "level0.png", "level0_color.png", "level1.png", "level1_color.png", "segments.json"
        ]
        colors = hierarchy_colors(segmented.hierarchy)
        for level in range(len(NUM_SEGMENTS)):
            raw = np.asarray(Image.open(io.BytesIO(archive.read(f"level{level}.png"))))
            color = Image.open(io.BytesIO(archive.read(f"level{level}_color.png")))
            np.testing.assert_array_equal(raw, segmented.hierarchy[level])
            np.testing.assert_array_equal(np.asarray(color), raw)
            np.testing.assert_array_equal(np.asarray(color.convert("RGB")), colors[level])
        segments = json.loads(archive.read("segments.json"))
        assert len(segments["levels"]) == len(NUM_SEGMENTS)


def test_session_reports_bad_uploads_and_models(session, tmp_path):
    with pytest.raises(ValueError, match="upload an image or pick a sample first"):
        session.segment(None, "")
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.jpg is not an image that can be read"):
        session.segment(text, "")
    Image.fromarray(skimage_data.camera()).save(tmp_path / "camera.png")
    with pytest.raises(ValueError, match="'.*no-such-model': cannot load a CAST model"):
        session.segment(tmp_path / "camera.png", str(tmp_path / "no-such-model"))


def test_cast_demo_parser_binds_to_localhost_and_limits_uploads():
    args = demo.build_parser().parse_args([])
    assert args.host == "127.0.0.1"
    assert args.max_upload_mb == demo.DEFAULT_MAX_UPLOAD_MB
    with pytest.raises(SystemExit):
        demo.build_parser().parse_args(["--max-upload-mb", "0"])


def test_default_model_prefers_the_make_demo_model(tmp_path, monkeypatch, model_dir):
    monkeypatch.chdir(tmp_path)
    made = tmp_path / demo.MAKE_DEMO_MODEL
    shutil.copytree(model_dir, made)
    assert demo.default_model(cache_dir=tmp_path / "cache") == made
    cached = tmp_path / "cache" / demo.QUICK_MODEL_NAME
    shutil.copytree(model_dir, cached)
    shutil.rmtree(made)
    monkeypatch.setattr(demo, "_SOURCE_CHECKOUT", tmp_path / "no-checkout")
    assert demo.default_model(cache_dir=tmp_path / "cache") == cached  # trained before: not trained again


def test_train_quick_model_saves_a_loadable_model(tmp_path):
    folder = demo.train_quick_model(tmp_path / "quick", steps=2, num_samples=8)
    loaded = demo.DemoSession(str(folder)).model("")[0]
    assert loaded.config.num_segments == [32, 16, 8, 4]
    assert not list(tmp_path.glob(".quick-*"))  # the staging folder was renamed into place


# ---------------------------------------------------------------------------------------------------------------
# The running app in headless Chromium
# ---------------------------------------------------------------------------------------------------------------


def _browser_paths() -> tuple[str, str]:
    pytest.importorskip("gradio", reason='the app needs Gradio: pip install -e ".[demo]" (make test does)')
    pytest.importorskip("selenium", reason='the browser test needs Selenium: pip install -e ".[demo]" (make test does)')
    browser = next((shutil.which(name) for name in CHROMIUM_CANDIDATES if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no Chromium and chromedriver installed: apt-get install chromium chromium-driver (make test does)")
    return browser, driver


@pytest.fixture(scope="module")
def app_url(model_dir):
    _browser_paths()
    model = os.environ.get("CAST_APP_TEST_MODEL", str(model_dir))
    app = demo.launch(demo.DemoSession(model), host="127.0.0.1", port=None, max_upload_mb=MAX_UPLOAD_MB, block=False)
    yield app.local_url.rstrip("/")
    app.close()


@pytest.fixture(scope="module")
def browser(app_url):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser_path, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def _artifacts_dir() -> Path:
    folder = Path(os.environ.get("CAST_TEST_ARTIFACTS", REPO_ROOT / "outputs" / "test_artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _image_source(driver, elem_id: str) -> str | None:
    """The `src` of the picture inside a Gradio image component, once it is loaded."""
    return driver.execute_script(
        "const img = document.querySelector(`#${arguments[0]} img`);"
        "return img && img.complete && img.naturalWidth > 0 ? img.src : null;",
        elem_id,
    )


def _natural_size(driver, elem_id: str) -> tuple[int, int]:
    return tuple(
        driver.execute_script(
            "const img = document.querySelector(`#${arguments[0]} img`); return [img.naturalWidth, img.naturalHeight];",
            elem_id,
        )
    )


def _fetch_pixels(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:  # the app's own file route on 127.0.0.1
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


def test_app_in_chromium_uploads_segments_and_the_slider_changes_the_picture(browser, app_url, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    photo = skimage_data.astronaut()
    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(photo_path)
    height, width = photo.shape[:2]
    wait = WebDriverWait(browser, PAGE_TIMEOUT)

    browser.get(app_url)
    upload = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
    upload.send_keys(str(photo_path))  # the upload event segments the photo
    wait.until(lambda driver: _image_source(driver, "level-view") and _image_source(driver, "all-levels"))

    num_levels = int(browser.find_element(By.CSS_SELECTOR, "#level-slider input[type=number]").get_attribute("max")) + 1
    assert _natural_size(browser, "level-view") == (width, height)
    all_width, all_height = _natural_size(browser, "all-levels")
    assert all_width == (num_levels + 1) * width + num_levels * DEFAULT_GAP and all_height > height
    coarsest_source = _image_source(browser, "level-view")
    coarsest = _fetch_pixels(coarsest_source)
    assert coarsest.shape == (height, width, 3)

    # the slider starts on the coarsest level; moving it to the finest redraws the level view
    number = browser.find_element(By.CSS_SELECTOR, "#level-slider input[type=number]")
    number.send_keys(Keys.CONTROL, "a")
    number.send_keys("0", Keys.ENTER)
    wait.until(lambda driver: _image_source(driver, "level-view") not in (None, coarsest_source))
    finest = _fetch_pixels(_image_source(browser, "level-view"))
    assert finest.shape == coarsest.shape and not np.array_equal(finest, coarsest)

    # clicking a segment dims everything outside its lineage in the picture of every level
    all_levels_source = _image_source(browser, "all-levels")
    level_image = browser.find_element(By.CSS_SELECTOR, "#level-view img")
    ActionChains(browser).move_to_element_with_offset(level_image, 0, 0).click().perform()
    wait.until(lambda driver: _image_source(driver, "all-levels") not in (None, all_levels_source))
    lit = _fetch_pixels(_image_source(browser, "all-levels"))
    plain = _fetch_pixels(all_levels_source)
    assert lit.shape == plain.shape and lit[:height, width:].mean() < plain[:height, width:].mean()
    assert np.array_equal(lit[:height, :width], plain[:height, :width])  # the photo itself is not dimmed

    downloads = browser.find_elements(By.CSS_SELECTOR, "#label-maps a")
    assert downloads and downloads[0].get_attribute("href").endswith("cast_label_maps.zip")
    browser.execute_script("document.querySelector('#level-view').scrollIntoView({block: 'start'})")
    assert browser.save_screenshot(str(_artifacts_dir() / "app_browser.png"))


def test_app_refuses_uploads_over_the_size_limit(app_url):
    pytest.importorskip("gradio")
    body = b"0" * (MAX_UPLOAD_MB * 1024 * 1024 + 1)
    boundary = "cast-test-boundary"
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + body + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{app_url}/gradio_api/upload",
        data=payload,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    assert error.value.code == 413
