"""Draws docs/episode-mosaic.png: one episode of the shipped ``corridor`` level at 6 moments, each
the world from above (left) and the agent's first-person RGB image (right, 64 x 64 scaled x4). The
agent walks straight ahead: over the button (bright while pressed), through door 1 (green from
above once open, gone from the first-person view) and into the exit cells (tinted).

    python docs/make_mosaic.py [--out docs/episode-mosaic.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import escape_room_env as er
from escape_room_env.render import Scene, first_person_strip, picture, save_png

MOMENTS = (0, 3, 6, 9, 12, 16)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "episode-mosaic.png")
    args = p.parse_args()
    sim = er.SimManager(
        num_worlds=1, levels="corridor", autoreset_mode="disabled", enable_batch_renderer=True
    )
    sim.action_tensor().to_numpy()[:] = (3, 0, 2)  # FAST, FORWARD, no turn
    tiles = []
    for step in range(MOMENTS[-1] + 1):
        if step in MOMENTS:
            top = picture(Scene.from_world(sim, 0), pixels_per_metre=8)
            tile = np.concatenate([top, first_person_strip(sim, 0, top.shape[0])], axis=1)
            tiles.append(np.pad(tile, ((4, 4), (4, 4), (0, 0)), constant_values=255))
        sim.step()
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles), 3)]
    save_png(np.concatenate(rows, axis=0), str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
