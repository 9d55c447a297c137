"""Top-down level pictures (``escape_room_env.render``), ``escape-room render-level`` and
``escape-room bench`` (SPEC §2.7, §9)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import OUTSIDE_SOURCE

from escape_room_env.levels import compile_level
from escape_room_env.render import COLOURS, Scene, level_picture, picture

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
    return subprocess.run(
        [sys.executable, "-m", "escape_room_env.cli", *args],
        cwd=OUTSIDE_SOURCE,
        capture_output=True,
        text=True,
        check=False,
    )


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
