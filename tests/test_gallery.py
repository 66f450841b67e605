"""The prototype gallery: a page that loads in a real browser (headless Chromium), with a playable player of
the right length per prototype, spectra on one shared scale, and the confusion matrix when data is given."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_model import REFERENCE_MIDI, TIMBRES, midi_to_hz, tone, write_tiny_model

from training.gallery import confusion_table, db_range, note_name, spectrum_svg
from training.prototypes import main

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
#: Flags for a sandboxed-off, offline headless Chromium (a closed network refuses its background calls).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic", "--autoplay-policy=no-user-gesture-required", "--window-size=1300,1600")


def _labelled_tones(folder: Path) -> Path:
    """One folder per timbre, two notes each: labelled audio the tiny model knows."""
    for timbre in TIMBRES:
        (folder / timbre).mkdir(parents=True)
        for offset in (0, 5):
            sf.write(folder / timbre / f"{REFERENCE_MIDI + offset}.wav",
                     tone(timbre, midi_to_hz(REFERENCE_MIDI + offset), 1.0, 44100), 44100)
    return folder


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is installed by install.sh ([test] extra)")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("NOT TESTED: Debian chromium and chromium-driver are missing (install.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_the_gallery_loads_in_chromium_with_a_playable_player_per_prototype(tmp_path, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    model = write_tiny_model(tmp_path / "tiny.pt")
    out = tmp_path / "gallery"
    args = ["--preset", str(model), "--html", str(out), "--data", str(_labelled_tones(tmp_path / "data")),
            "--cache", str(tmp_path / "cache"), "--no-progress"]
    assert main(args) == 0
    browser.get((out / "index.html").as_uri())
    players = """return [...document.querySelectorAll('audio')].map(a => ({src: a.currentSrc, ready: a.readyState,
                 duration: a.duration, error: a.error && a.error.code, wav: a.canPlayType('audio/wav')}))"""
    WebDriverWait(browser, 60).until(lambda driver: all(p["ready"] >= 1 for p in driver.execute_script(players)))
    found = browser.execute_script(players)
    assert len(found) == 2 * len(TIMBRES)  # a prototype and the typical transformed prototype per class
    for player in found:
        assert player["error"] is None and player["wav"], player
        assert abs(player["duration"] - 2.0) < 0.1, player
        assert Path(player["src"].removeprefix("file://")).parent == out
    # one really plays: its clock moves
    browser.execute_script("document.querySelector('audio').play()")
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script(
        "return document.querySelector('audio').currentTime") > 0.05)
    assert browser.find_elements("css selector", "section.class h2")[0].text == TIMBRES[0]
    assert len(browser.find_elements("css selector", "svg polyline")) == 2 * len(TIMBRES)
    assert "Confusion matrix" in browser.page_source
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    screenshot = tmp_path / "gallery.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_without_data_the_page_has_only_the_prototypes(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.pt")
    assert main(["--preset", str(model), "--html", str(tmp_path / "g"), "--no-progress"]) == 0
    page = (tmp_path / "g" / "index.html").read_text()
    assert page.count("<audio") == len(TIMBRES) and "Confusion" not in page
    assert "A3 (MIDI 57.0)" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for index, name in enumerate(TIMBRES):
        assert f'src="{index:02d}-{name}.wav"' in page and (tmp_path / "g" / f"{index:02d}-{name}.wav").exists()


def test_every_spectrum_shares_one_db_scale_and_frequency_axis():
    centres = np.geomspace(40.0, 16000.0, 64)
    quiet, loud = np.full(64, 0.3), np.full(64, 0.6)  # -49 and +2 dB
    scale = db_range([quiet, loud])
    assert scale == (-60, 20)
    svgs = [spectrum_svg(frame, centres, scale) for frame in (quiet, loud)]
    ys = [float(svg.split('points="')[1].split(",")[1].split()[0]) for svg in svgs]
    assert ys[0] > ys[1]  # the quieter spectrum is drawn lower on the same axis
    assert all(label in svgs[0] for label in (">100<", ">1k<", ">10k<", ">-40<", ">0<"))


def test_a_body_is_drawn_dashed_only_where_the_model_has_one():
    centres = np.geomspace(40.0, 16000.0, 64)
    plain = spectrum_svg(np.full(64, 0.4), centres, (-60, 20))
    bodied = spectrum_svg(np.full(64, 0.4), centres, (-60, 20), body=np.full(64, 0.05))  # +8.5 dB
    assert 'class="body"' not in plain and bodied.count("<polyline") == 2
    body_y = float(bodied.split('class="body" points="')[1].split(",")[1].split()[0])
    trace_y = float(bodied.split('class="trace" points="')[1].split(",")[1].split()[0])
    assert body_y < trace_y  # the body's +8.5 dB is drawn above the spectrum's -32 dB


def test_confusion_rows_are_shaded_by_their_share():
    table = confusion_table(np.array([[3, 1], [0, 2]]), ["flute", "oboe"])
    assert "rgba(31, 95, 168, 0.75)" in table and "rgba(31, 95, 168, 1.00)" in table
    assert table.count("<tr>") == 3


@pytest.mark.parametrize(("midi", "name"), [(57.0, "A3 (MIDI 57.0)"), (60.4, "C4 (MIDI 60.4)"), (None, "unknown")])
def test_note_names(midi, name):
    assert note_name(midi) == name


def test_a_file_where_the_gallery_folder_should_be_is_one_line(tmp_path, capsys):
    model = write_tiny_model(tmp_path / "tiny.pt")
    (tmp_path / "taken").write_text("mine")
    assert main(["--preset", str(model), "--html", str(tmp_path / "taken"), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err and (tmp_path / "taken").read_text() == "mine"

