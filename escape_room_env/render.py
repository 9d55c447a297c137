"""Top-down pictures of a level (numpy only): every entity class in its own colour.

>>> from escape_room_env.levels import compile_level
>>> from escape_room_env.render import COLOURS, level_picture
>>> image = level_picture(compile_level("corridor"), pixels_per_metre=4)
>>> image.shape, image.dtype
((112, 56, 3), dtype('uint8'))
>>> tuple(image[0, 0]) == COLOURS["wall"]
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from escape_room_env.levels import CompiledLevel

__all__ = ["COLOURS", "level_picture", "save_png", "top_down"]

# RGB of each entity class.
COLOURS: dict[str, tuple[int, int, int]] = {
    "floor": (236, 236, 232),
    "exit": (206, 238, 196),  # the exit zone, tinted
    "wall": (110, 110, 118),
    "door": (204, 52, 52),  # closed
    "open_door": (96, 192, 96),
    "button": (214, 184, 40),
    "pressed_button": (255, 236, 96),
    "cube": (140, 92, 52),
    "agent": (52, 100, 220),
    "heading": (255, 255, 255),  # a mark from an agent's centre toward where it faces
}

_AGENT_RADIUS = 1.0
_CUBE_HALF = 1.5
_BUTTON_HALF = 0.65


class _Canvas:
    """An RGB image over a world rectangle, y up, ``pixels_per_metre`` pixels per metre."""

    def __init__(self, bounds: tuple[float, float, float, float], pixels_per_metre: float):
        self.min_x, self.min_y, max_x, max_y = bounds
        self.scale = float(pixels_per_metre)
        self.width = max(1, round((max_x - self.min_x) * self.scale))
        self.height = max(1, round((max_y - self.min_y) * self.scale))
        self.image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        # World coordinates of the pixel centres (row 0 is the top, the largest y).
        self.xs = self.min_x + (np.arange(self.width) + 0.5) / self.scale
        self.ys = self.min_y + (self.height - 1 - np.arange(self.height) + 0.5) / self.scale

    def fill(self, colour: tuple[int, int, int]) -> None:
        self.image[:] = colour

    def box(self, box: Sequence[float], colour: tuple[int, int, int]) -> None:
        min_x, min_y, max_x, max_y = box
        cols = (self.xs >= min_x) & (self.xs <= max_x)
        rows = (self.ys >= min_y) & (self.ys <= max_y)
        self.image[np.ix_(rows, cols)] = colour

    def disc(self, centre: Sequence[float], radius: float, colour: tuple[int, int, int]) -> None:
        x, y = centre
        inside = (self.xs[None, :] - x) ** 2 + (self.ys[:, None] - y) ** 2 <= radius * radius
        self.image[inside] = colour


def top_down(
    level: CompiledLevel,
    *,
    agents: np.ndarray | None = None,
    cubes: np.ndarray | None = None,
    door_open: Sequence[bool] | None = None,
    pixels_per_metre: float = 8.0,
) -> np.ndarray:
    """A top-down RGB image (H, W, 3) uint8 of ``level`` with bodies where given: agent centres
    (A, 2), cube centres (C, 2) and each door's state (closed when not given). The picture covers
    the level and its outer walls; row 0 is the largest y."""
    min_x, min_y, max_x, max_y = level.bounds
    pad = (level.walls[:4, 2] - level.walls[:4, 0]).min() if len(level.walls) >= 4 else 0.0
    canvas = _Canvas((min_x - pad, min_y - pad, max_x + pad, max_y + pad), pixels_per_metre)
    canvas.fill(COLOURS["floor"])
    for box in level.exits:
        canvas.box(box, COLOURS["exit"])
    for box in level.walls:
        canvas.box(box, COLOURS["wall"])
    for d, box in enumerate(level.doors):
        is_open = door_open is not None and bool(door_open[d])
        canvas.box(box, COLOURS["open_door" if is_open else "door"])
    for x, y in level.buttons:
        canvas.box(
            (x - _BUTTON_HALF, y - _BUTTON_HALF, x + _BUTTON_HALF, y + _BUTTON_HALF), COLOURS["button"]
        )
    for x, y in level.cubes if cubes is None else cubes:
        canvas.box((x - _CUBE_HALF, y - _CUBE_HALF, x + _CUBE_HALF, y + _CUBE_HALF), COLOURS["cube"])
    for centre in () if agents is None else agents:
        canvas.disc(centre, _AGENT_RADIUS, COLOURS["agent"])
    return canvas.image


def level_picture(level: CompiledLevel, *, pixels_per_metre: float = 8.0) -> np.ndarray:
    """``level`` at the start of an episode: every spawn with an agent, cubes at their starts,
    doors closed."""
    return top_down(level, agents=level.spawns, pixels_per_metre=pixels_per_metre)


def save_png(image: np.ndarray, path: str) -> None:
    """Writes an RGB image with imageio (``pip install escape_room_env[render]``)."""
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise ImportError(
            "writing images needs imageio: pip install 'escape_room_env[render]' (or pip install imageio)"
        ) from e
    iio.imwrite(path, image)
