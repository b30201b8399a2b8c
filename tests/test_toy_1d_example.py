"""examples/toy_1d.py --animate: a short run writes a GIF that Pillow reads, one frame per moment."""

import pytest
from scripts import load_script  # tests/scripts.py



@pytest.fixture(scope="module")
def script():
    return load_script("examples/toy_1d.py", "toy_1d_example")


@pytest.mark.slow  # about 4 s of CPU time (16 s wall on the busy 2-core dev VM), mostly matplotlib
def test_animate_writes_a_gif_with_a_frame_per_moment(script, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")  # matplotlib depends on Pillow, so this rarely skips
    gif, png = tmp_path / "out" / "figure1.gif", tmp_path / "figure1.png"
    assert script.main(["--steps", "8", "--frames", "4", "--out", str(png), "--animate", str(gif)]) == 0
    assert "(4 moments)" in capsys.readouterr().out
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.size == (448, 288)
        # Frames at steps 1, 2, 4 and 8; the figure's moments are 1, 2 and 8, panels (a) to (c).
        # Pillow merges a held frame's repeats into one longer frame: 4 + 4 + 1 + 8 frames at 8 fps.
        durations = []
        for i in range(image.n_frames):
            image.seek(i)
            durations.append(image.info["duration"])
    assert len(durations) == 4
    assert abs(sum(durations) - 17 * 125) <= 10 * len(durations)  # GIF stores centiseconds
    assert durations[0] == durations[1] > 3 * durations[2] and durations[3] > 6 * durations[2]
    assert png.stat().st_size > 0
    assert not list((tmp_path / "out").glob(".*"))  # no partial file left behind


def test_frames_must_be_at_least_four(script):
    with pytest.raises(SystemExit):
        script.parse_args(["--frames", "3"])
