"""Top-down level pictures (``escape_room_env.render``), ``escape-room render-level`` and
``escape-room bench`` (SPEC §2.7, §9)."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from helpers import run_python

from escape_room_env.levels import compile_level
from escape_room_env.render import COLOURS, MAX_PICTURE_SIDE, Scene, level_picture, picture

iio = pytest.importorskip("imageio.v3")

PPM = 4.0  # pixels per metre
LEVEL = """
#########
#..EE...#
#...2...#
#.......#
#b......#
#.....C.#
#.......#
#...1...#
#a.....S#
#########
"""  # 9 x 10 cells of 2 m; the picture adds the 2 m outer walls on each side
H = 10


def pixel(level, image, x, y):
    """The pixel whose centre is nearest to world point (x, y)."""
    min_x, _, _, max_y = level.bounds
    pad = 2.0  # outer wall thickness = cell_size
    col = int((x - (min_x - pad)) * PPM)
    row = int(((max_y + pad) - y) * PPM)
    return tuple(int(v) for v in image[row, col])


@pytest.fixture(scope="module")
def level():
    return compile_level({"ascii": LEVEL, "name": "pic"})


def test_picture_size_covers_the_level_and_its_outer_walls(level):
    image = level_picture(level, pixels_per_metre=PPM)
    assert image.shape == ((10 * 2 + 4) * PPM, (9 * 2 + 4) * PPM, 3)
    assert image.dtype == np.uint8


def test_every_entity_class_is_drawn_in_its_colour_at_its_position(level):
    image = level_picture(level, pixels_per_metre=PPM)

    def centre(r, c):  # of cell (r, c): x = 2c + 1, y = 2 (H - 1 - r) + 1
        return 2 * c + 1.0, 2 * (H - 1 - r) + 1.0

    assert pixel(level, image, -1.0, 5.0) == COLOURS["wall"]  # outer wall, left of the grid
    assert pixel(level, image, *centre(0, 3)) == COLOURS["wall"]
    assert pixel(level, image, *centre(1, 3)) == COLOURS["exit"]
    assert pixel(level, image, *centre(2, 4)) == COLOURS["door"]
    assert pixel(level, image, *centre(7, 4)) == COLOURS["door"]
    assert pixel(level, image, *centre(8, 1)) == COLOURS["button"]
    assert pixel(level, image, *centre(4, 1)) == COLOURS["button"]
    assert pixel(level, image, *centre(5, 6)) == COLOURS["cube"]
    assert pixel(level, image, *centre(8, 7)) == COLOURS["agent"]
    x, y = centre(8, 7)
    assert pixel(level, image, x, y + 0.6) == COLOURS["heading"]  # the mark toward +y, where it faces
    assert pixel(level, image, *centre(3, 5)) == COLOURS["floor"]


def test_scene_draws_bodies_where_given_open_doors_and_pressed_buttons(level):
    scene = Scene.from_level(level)
    scene.agents = np.array([[3.0, 7.0]], dtype=np.float32)
    scene.yaws = np.array([0.0], dtype=np.float32)
    scene.cubes = np.array([[9.0, 3.0]], dtype=np.float32)
    scene.door_open = level.door_groups == 1
    scene.pressed = level.button_groups == 2
    image = picture(scene, pixels_per_metre=PPM)
    assert pixel(level, image, 3.0, 6.8) == COLOURS["agent"]
    assert pixel(level, image, 3.0, 7.0 + 0.6) == COLOURS["heading"]  # facing +y
    assert pixel(level, image, 9.0, 3.0) == COLOURS["cube"]
    assert pixel(level, image, 13.0, 9.0) == COLOURS["floor"]  # the cube's start, now empty
    door_by_group = dict(zip(level.door_groups.tolist(), level.doors))
    (x0, y0, x1, y1) = door_by_group[2]
    assert pixel(level, image, (x0 + x1) / 2, (y0 + y1) / 2) == COLOURS["door"]
    (x0, y0, x1, y1) = door_by_group[1]
    assert pixel(level, image, (x0 + x1) / 2, (y0 + y1) / 2) == COLOURS["open_door"]
    button_by_group = dict(zip(level.button_groups.tolist(), level.buttons))
    assert pixel(level, image, *button_by_group[2]) == COLOURS["pressed_button"]
    assert pixel(level, image, *button_by_group[1]) == COLOURS["button"]


def run_cli(*args):
    return run_python("-m", "escape_room_env.cli", *args)


def test_render_level_cli_writes_the_png_of_a_shipped_level(tmp_path):
    out = tmp_path / "corridor.png"
    result = run_cli("render-level", "corridor", "-o", str(out), "--pixels-per-metre", "4")
    assert result.returncode == 0, result.stderr
    assert "corridor: 12 x 5 cells of 2 m, 8 walls, 1 doors, 1 buttons, 0 cubes, 1 spawns" in result.stdout
    image = iio.imread(out)
    np.testing.assert_array_equal(image, level_picture(compile_level("corridor"), pixels_per_metre=4))


def test_render_level_cli_reads_a_level_file_and_reports_mistakes(tmp_path):
    good = tmp_path / "mine.txt"
    good.write_text("#####\n#S.E#\n#####\n")
    assert run_cli("render-level", str(good), "-o", str(tmp_path / "mine.png")).returncode == 0
    assert (tmp_path / "mine.png").is_file()
    bad = tmp_path / "bad.txt"
    bad.write_text("#####\n#S.E#\n##x##\n")
    result = run_cli("render-level", str(bad), "-o", str(tmp_path / "bad.png"))
    assert result.returncode == 2
    assert "row 2, column 2: unknown character 'x'" in result.stderr
    assert not (tmp_path / "bad.png").exists()
    missing = run_cli("render-level", "no_such_level")
    assert missing.returncode == 2 and "corridor" in missing.stderr


def test_render_level_cli_prints_the_unreachable_exit_warning(tmp_path):
    walled = tmp_path / "walled.txt"
    walled.write_text("#####\n#S#E#\n#####\n")
    result = run_cli("render-level", str(walled), "-o", str(tmp_path / "w.png"))
    assert result.returncode == 0
    assert "warning:" in result.stderr and "reachable" in result.stderr


def test_bench_cli_prints_json_rows_and_the_overhead_fit():
    result = run_cli("bench", "--json", "--no-peers", "--worlds", "1", "8", "--seconds", "0.01")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert "machine" in rows[0]
    steps = [r for r in rows[1:] if r["impl"] == "SimManager.step"]
    assert sorted({r["num_worlds"] for r in steps}) == [1, 8]
    assert all(r["world_steps_per_s"] > 0 and r["us_per_step"] > 0 for r in steps)
    fit = rows[-1]
    assert fit["impl"] == "fit" and fit["fit_worlds"] == [1, 4, 16, 64] and fit["b_us"] > 0


# -- memory: every legal level renders in bounded memory (issue 14, item 13) -----------------


def largest_legal_level(cell_size: float = 1000.0) -> dict:
    """256 x 256 cells (the compiler's limit) of the largest cell size, with the most of every
    entity (SPEC §2.1): 60 wall boxes with the outer 4, 8 doors in 8 door rows, 16 buttons, 16
    cubes, 4 spawns and 16 exit boxes."""
    grid = np.full((256, 256), ".")
    grid[0, 100:132:2] = "E"
    grid[3, 150:230:2] = "#"
    for k in range(8):  # door rows from the top: doors 8 to 1, two buttons under each
        r = 28 * (k + 1)
        grid[r, :] = "#"
        grid[r, 10 + 20 * k : 13 + 20 * k] = str(8 - k)
        grid[r + 3, 5 + 20 * k] = grid[r + 6, 9 + 20 * k] = "abcdefgh"[7 - k]
    for i in range(16):
        grid[240 + 3 * (i // 8), 30 + 4 * (i % 8)] = "C"
    grid[254, 100:104] = "S"
    return {"ascii": ["".join(row) for row in grid], "cell_size": cell_size, "momentary": [2, 5]}


def traced_peak(draw):
    """``draw()`` and the most memory numpy and Python held at once while it ran, in bytes."""
    tracemalloc.start()
    try:
        result = draw()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


#: What a picture may hold at once beyond the image: a row and a column of pixel coordinates
#: and a shape's footprint (measured: under 0.2 MiB for the largest legal level).
TEMPORARIES = 2**20


def test_largest_legal_level_renders_at_most_max_picture_side_in_bounded_memory():
    level = compile_level(largest_legal_level(), num_agents=4)
    assert (level.rows, level.cols, len(level.walls), len(level.doors)) == (256, 256, 60, 8)
    assert (len(level.buttons), len(level.cubes), len(level.spawns), len(level.exits)) == (16, 16, 4, 16)
    # At the default 8 pixels a metre the 258 km square would be 2 064 000 pixels a side (12 TB).
    image, peak = traced_peak(lambda: level_picture(level))
    assert image.shape == (MAX_PICTURE_SIDE, MAX_PICTURE_SIDE, 3) == (4096, 4096, 3)
    assert peak <= image.nbytes + TEMPORARIES
    assert tuple(image[0, 0]) == COLOURS["wall"] and tuple(image[2048, 2048]) == COLOURS["floor"]
    # Any requested scale gives the same bounded picture.
    image, peak = traced_peak(lambda: level_picture(level, pixels_per_metre=1e6))
    assert image.shape == (4096, 4096, 3) and peak <= image.nbytes + TEMPORARIES


def test_reported_75_by_75_level_at_cell_size_20_renders_in_bounded_memory():
    rows = ["#" * 75] + ["#" + "." * 73 + "#"] * 73 + ["#" * 75]
    rows[1], rows[-2] = "#E" + "." * 72 + "#", "#" + "." * 72 + "S#"
    level = compile_level({"ascii": rows, "cell_size": 20})
    image, peak = traced_peak(lambda: level_picture(level))  # was 12320 x 12320, 1.7 GiB peak
    assert image.shape == (4096, 4096, 3)
    assert peak <= image.nbytes + TEMPORARIES


def test_picture_over_the_limit_keeps_its_aspect_ratio():
    # 256 rows by 4 columns of 1 km, plus 1 km of outer wall around: 258 km by 6 km.
    level = compile_level({"ascii": ["S..."] + ["...."] * 254 + ["...E"], "cell_size": 1000})
    image = level_picture(level)
    assert image.shape == (4096, round(6000 * 4096 / 258000), 3) == (4096, 95, 3)


def test_picture_that_fits_keeps_the_requested_scale():
    # 2 x 126 cells of 2 m and 2 m of wall each side: 8 m by 256 m, 4096 pixels at 16 a metre.
    level = compile_level({"ascii": ["S" + "." * 125, "." * 125 + "E"]})
    exact = level_picture(level, pixels_per_metre=16)
    assert exact.shape == (128, 4096, 3)
    # 17 a metre asks 4352 pixels: drawn at 16 a metre, the same picture.
    np.testing.assert_array_equal(level_picture(level, pixels_per_metre=17), exact)


@pytest.mark.parametrize("ppm", [0, -1.0, float("nan"), float("inf")])
def test_pixels_per_metre_must_be_positive_and_finite(level, ppm):
    with pytest.raises(ValueError, match="pixels_per_metre must be a positive finite number"):
        level_picture(level, pixels_per_metre=ppm)
