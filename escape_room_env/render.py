"""Top-down pictures (numpy only): the human view of SPEC §6 and ``escape-room render-level``.

Walls grey, closed doors red, open doors green, buttons yellow (bright while pressed), cubes
brown, agents blue with a white mark toward where they face, the exit zone tinted.

>>> import escape_room_env as er
>>> from escape_room_env.levels import compile_level
>>> from escape_room_env.render import COLOURS, Scene, picture
>>> image = picture(Scene.from_level(compile_level("corridor")), pixels_per_metre=4)
>>> image.shape, image.dtype
((112, 56, 3), dtype('uint8'))
>>> tuple(image[0, 0]) == COLOURS["wall"]
True
>>> picture(Scene.from_world(er.SimManager(num_worlds=2), 1), pixels_per_metre=2).shape
(96, 44, 3)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from escape_room_env import _core
from escape_room_env.levels import CompiledLevel

__all__ = [
    "COLOURS",
    "MAX_PICTURE_SIDE",
    "Scene",
    "level_picture",
    "picture",
    "replay_frames",
    "save_png",
    "write_video",
]

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
    "heading": (255, 255, 255),
}

_AGENT_RADIUS, _CUBE_HALF, _BUTTON_HALF = _core.BODY_SIZES  # metres: a disc's radius, squares' half-sides


@dataclasses.dataclass
class Scene:
    """What a top-down picture shows, in metres: boxes as rows of (min_x, min_y, max_x, max_y)."""

    walls: np.ndarray  # (K, 4)
    doors: np.ndarray  # (D, 4)
    door_open: np.ndarray  # (D,) bool
    buttons: np.ndarray  # (B, 2) centres
    pressed: np.ndarray  # (B,) bool
    cubes: np.ndarray  # (C, 2) centres
    agents: np.ndarray  # (A, 2) centres
    yaws: np.ndarray  # (A,) radians, 0 faces +y
    exits: np.ndarray  # (E, 4)

    @classmethod
    def from_level(cls, level: CompiledLevel) -> Scene:
        """A custom level at the start of an episode: an agent on every spawn, doors closed."""
        return cls(
            walls=level.walls,
            doors=level.doors,
            door_open=np.zeros(len(level.doors), dtype=bool),
            buttons=level.buttons,
            pressed=np.zeros(len(level.buttons), dtype=bool),
            cubes=level.cubes,
            agents=level.spawns,
            yaws=np.zeros(len(level.spawns), dtype=np.float32),
            exits=level.exits,
        )

    @classmethod
    def from_world(cls, sim, world: int) -> Scene:
        """World ``world`` of a simulator as it is now (generated or custom level)."""
        state = sim.host_array
        num_statics, num_doors, num_buttons, num_cubes, _, num_exits = (
            int(n) for n in state("level_counts")[world]
        )
        statics = state("level_statics")[world, :num_statics]
        door_of = state("level_static_door")[world, :num_statics]
        doors = np.zeros((num_doors, 4), dtype=np.float32)
        for i in np.flatnonzero(door_of >= 0):
            doors[door_of[i]] = statics[i]
        agents = state("agent_pos")[world].copy()
        cubes = state("cube_pos")[world, :num_cubes].copy()
        buttons = state("level_button_pos")[world, :num_buttons].copy()
        pressed = (int(sim.pressed_buttons()[world]) >> np.arange(num_buttons) & 1).astype(bool)
        return cls(
            walls=statics[door_of < 0].copy(),
            doors=doors,
            door_open=state("door_open")[world, :num_doors].astype(bool),
            buttons=buttons,
            pressed=pressed,
            cubes=cubes,
            agents=agents,
            yaws=state("agent_yaw")[world].copy(),
            exits=state("level_exits")[world, :num_exits].copy(),
        )

    def bounds(self) -> tuple[float, float, float, float]:
        """The rectangle the walls enclose, walls included."""
        boxes = self.walls if len(self.walls) else np.array([[-1.0, -1.0, 1.0, 1.0]])
        return (
            float(boxes[:, 0].min()),
            float(boxes[:, 1].min()),
            float(boxes[:, 2].max()),
            float(boxes[:, 3].max()),
        )


#: The longest side of a top-down picture in pixels. A scene that would be longer at the
#: requested ``pixels_per_metre`` is drawn at the scale that makes its longest side this long,
#: so every legal level (up to 256 x 256 cells of 1000 m) renders in bounded memory: the image,
#: at most 4096 x 4096 x 3 bytes (48 MiB), plus temporaries of one row or column of pixels and
#: of an agent's or marker's footprint (the shapes are drawn into slices of the image).
MAX_PICTURE_SIDE = 4096


def _span(inside: np.ndarray) -> slice:
    """The slice from the first to the last True of a 1-D mask (empty if none)."""
    hits = np.flatnonzero(inside)
    return slice(int(hits[0]), int(hits[-1]) + 1) if len(hits) else slice(0, 0)


class _Canvas:
    """An RGB image over a world rectangle, y up, ``pixels_per_metre`` pixels per metre (fewer
    where the longest side would exceed :data:`MAX_PICTURE_SIDE` pixels)."""

    def __init__(self, bounds: tuple[float, float, float, float], pixels_per_metre: float):
        min_x, min_y, max_x, max_y = bounds
        if not all(np.isfinite(bounds)) or max_x < min_x or max_y < min_y:
            raise ValueError(f"a picture needs a finite rectangle, got bounds {bounds}")
        scale = float(pixels_per_metre)
        longest = max(max_x - min_x, max_y - min_y)
        if longest * scale > MAX_PICTURE_SIDE:
            scale = MAX_PICTURE_SIDE / longest
        width = min(MAX_PICTURE_SIDE, max(1, round((max_x - min_x) * scale)))
        height = min(MAX_PICTURE_SIDE, max(1, round((max_y - min_y) * scale)))
        self.image = np.empty((height, width, 3), dtype=np.uint8)
        # World coordinates of the pixel centres (row 0 is the top, the largest y).
        self.xs = min_x + (np.arange(width) + 0.5) / scale
        self.ys = min_y + (height - 1 - np.arange(height) + 0.5) / scale

    def box(self, box, colour: tuple[int, int, int]) -> None:
        # The pixel centres are monotonic, so the pixels inside a box are one block.
        min_x, min_y, max_x, max_y = box
        cols = _span((self.xs >= min_x) & (self.xs <= max_x))
        rows = _span((self.ys >= min_y) & (self.ys <= max_y))
        self.image[rows, cols] = colour

    def square(self, centre, half: float, colour: tuple[int, int, int]) -> None:
        x, y = centre
        self.box((x - half, y - half, x + half, y + half), colour)

    def disc(self, centre, radius: float, colour: tuple[int, int, int]) -> None:
        # A pixel in the disc passes the test on each of its coordinates alone, so the test over
        # that block (the same arithmetic) finds every one of them without an image-sized mask.
        x, y = centre
        r2 = radius * radius
        cols = _span((self.xs - x) ** 2 <= r2)
        rows = _span((self.ys - y) ** 2 <= r2)
        inside = (self.xs[None, cols] - x) ** 2 + (self.ys[rows, None] - y) ** 2 <= r2
        self.image[rows, cols][inside] = colour


def picture(scene: Scene, *, pixels_per_metre: float = 8.0) -> np.ndarray:
    """The top-down RGB image (H, W, 3) uint8 of ``scene``; row 0 is the largest y.

    The scale is ``pixels_per_metre``, lowered where needed so that neither side is longer than
    :data:`MAX_PICTURE_SIDE` pixels: a picture of any legal level stays under 48 MiB.

    >>> from escape_room_env.levels import compile_level
    >>> rows = ["S" + "." * 255] + ["." * 256] * 254 + ["." * 255 + "E"]  # 256 x 256 cells
    >>> huge = compile_level({"ascii": rows, "cell_size": 1000})  # of 1 km: 8 px/m asks 2 Mpx
    >>> picture(Scene.from_level(huge)).shape
    (4096, 4096, 3)
    """
    scale = float(pixels_per_metre)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"pixels_per_metre must be a positive finite number, got {pixels_per_metre!r}")
    canvas = _Canvas(scene.bounds(), scale)
    canvas.image[:] = COLOURS["floor"]
    for box in scene.exits:
        canvas.box(box, COLOURS["exit"])
    for box in scene.walls:
        canvas.box(box, COLOURS["wall"])
    for box, is_open in zip(scene.doors, scene.door_open):
        canvas.box(box, COLOURS["open_door" if is_open else "door"])
    for centre, down in zip(scene.buttons, scene.pressed):
        canvas.square(centre, _BUTTON_HALF, COLOURS["pressed_button" if down else "button"])
    for centre in scene.cubes:
        canvas.square(centre, _CUBE_HALF, COLOURS["cube"])
    for centre, yaw in zip(scene.agents, scene.yaws):
        canvas.disc(centre, _AGENT_RADIUS, COLOURS["agent"])
        forward = np.array([-np.sin(yaw), np.cos(yaw)])
        canvas.disc(np.asarray(centre) + 0.6 * forward, 0.3, COLOURS["heading"])
    return canvas.image


def level_picture(level: CompiledLevel, *, pixels_per_metre: float = 8.0) -> np.ndarray:
    """A custom level at the start of an episode (see :meth:`Scene.from_level`)."""
    return picture(Scene.from_level(level), pixels_per_metre=pixels_per_metre)


def save_png(image: np.ndarray, path: str) -> None:
    """Writes an RGB image to a ``.png`` path with imageio (``pip install escape_room_env[render]``)."""
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"image path must end in .png, got {str(path)!r}")
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise ImportError(
            "writing images needs imageio: pip install 'escape_room_env[render]' (or pip install imageio)"
        ) from e
    iio.imwrite(path, image)


def first_person_strip(sim, world: int, height: int) -> np.ndarray:
    """The world's agents' first-person images side by side, scaled (nearest) to ``height`` rows."""
    rgb = sim.host_array("rgb")[world]  # (A, h, w, 3)
    scale = max(1, height // rgb.shape[1])
    strip = np.concatenate(
        [np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8)) for image in rgb], axis=1
    )
    out = np.full((height, strip.shape[1], 3), 255, dtype=np.uint8)
    out[: min(height, strip.shape[0])] = strip[:height]
    return out


def replay_frames(
    path: str,
    *,
    world: int = 0,
    pixels_per_metre: float = 8.0,
    first_person: bool = False,
    max_steps: int | None = None,
    from_step: int = 0,
):
    """Yields one RGB frame per recorded step of a replay file (and the start): world ``world``
    from above, with its agents' first-person images to the right when ``first_person``. The
    replay is verified as it runs (``ReplayDivergenceError`` on a mismatch). ``from_step``
    starts after that recorded step (``max_steps`` then counts from there)."""
    from escape_room_env.manager import SimManager

    sim = SimManager.from_replay(path, enable_batch_renderer=first_person)
    try:
        if not 0 <= world < sim.num_worlds:
            raise ValueError(f"world {world} out of range: the replay has {sim.num_worlds} worlds")
        _, total = sim.get_replay_step_count()
        if not 0 <= from_step <= total:
            raise ValueError(f"from_step {from_step} is outside the recording (0..{total})")
        sim.seek(from_step)
        total -= from_step
        total = total if max_steps is None else min(total, max_steps)

        def frame() -> np.ndarray:
            top = picture(Scene.from_world(sim, world), pixels_per_metre=pixels_per_metre)
            if not first_person:
                return top
            return np.concatenate([top, first_person_strip(sim, world, top.shape[0])], axis=1)

        yield frame()
        for _ in range(total):
            sim.replay_step()
            yield frame()
    finally:
        sim.close()


def write_video(frames, path: str, fps: float = 10.0) -> int:
    """Writes RGB frames to ``.gif`` (imageio, the ``render`` extra) or ``.mp4`` (imageio-ffmpeg,
    the ``video`` extra); returns the number of frames."""
    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix not in ("gif", "mp4"):
        raise ValueError(f"video path must end in .gif or .mp4, got {str(path)!r}")
    if not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise ImportError("videos need imageio: pip install 'escape_room_env[render]'") from e
    frames = list(frames)  # checked first: the frames may be a whole replay
    if not frames:
        raise ValueError("no frames to write")
    if suffix == "gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    elif suffix == "mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as e:
            raise ImportError("mp4 videos need imageio-ffmpeg: pip install 'escape_room_env[video]'") from e
        # Even sizes for the common H.264 pixel format.
        h, w = frames[0].shape[:2]
        stack = np.stack(frames)[:, : h - h % 2, : w - w % 2]
        iio.imwrite(path, stack, fps=fps, codec="libx264", macro_block_size=2)
    return len(frames)
