"""The replay viewer: a recording in the browser, every frame computed by the simulator.

``escape-room view FILE.bin`` serves one page on 127.0.0.1 (Python's standard library server,
nothing outside its own routes, no external assets); ``escape-room view FILE.bin --html out.html``
writes the same page as one self-contained file, its frames embedded. The page shows a world from
above (:func:`escape_room_env.render.picture`, the same scene and colours), the agents'
first-person images with ``--first-person``, a timeline, and the numbers behind each frame: the
step's actions, rewards, dones, progress, doors, buttons and the checkpoint status.

Frames are not stored: :class:`ReplayView` seeks one replay manager to the step asked for
(``SimManager.seek``, which verifies the file's checkpoints on the way) and keeps the last ones in
a bounded cache, so long files stay responsive. A replay that diverges from its recording is
shown up to the step whose checkpoint failed, marked as diverged.

>>> import os, tempfile, escape_room_env as er
>>> path = os.path.join(tempfile.mkdtemp(), "view.bin")
>>> with er.SimManager(num_worlds=2) as sim, sim.recording(path, seed=1):
...     sim.step(nstep=3)
>>> with ReplayView(path) as view:
...     numbers = view.step(1, 2)
...     numbers["step"], len(numbers["agents"]), numbers["checkpoint"]["status"], view.frame(1, 2)[:4]
(2, 1, 'verified', b'\\x89PNG')
"""

from __future__ import annotations

import base64
import bisect
import collections
import dataclasses
import http.server
import importlib.resources
import json
import math
import os
import struct
import sys
import threading
import urllib.parse
import warnings
import zlib
from typing import Any, Callable

import numpy as np
from typing_extensions import Self

from escape_room_env.errors import ReplayDivergenceError
from escape_room_env.render import Scene, first_person_strip, picture
from escape_room_env.replay import ReplayFile, ReplayTruncatedWarning

__all__ = [
    "DEFAULT_PORT",
    "HTML_MAX_BYTES",
    "HTML_MAX_FRAMES",
    "ReplayView",
    "StepUnavailable",
    "ViewerServer",
    "page_html",
    "png_bytes",
    "serve",
    "write_html",
]

#: The port ``escape-room view`` listens on unless told (``--port 0``: any free port).
DEFAULT_PORT = 8765
#: The most frames (worlds x steps) one ``--html`` file embeds.
HTML_MAX_FRAMES = 5000
#: The most bytes one ``--html`` file may have.
HTML_MAX_BYTES = 64 << 20
# The Host names the server answers to (a DNS-rebinding page sends its own name).
_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# The page's own content only (it has inline style and script, frames as its own URLs or data:).
_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)


class StepUnavailable(Exception):
    """The step asked for lies after the step at which the replay diverged from its recording.

    >>> issubclass(StepUnavailable, Exception)
    True
    """


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB image (H, W, 3) uint8 as PNG bytes, with zlib alone (no imageio needed).

    >>> data = png_bytes(np.zeros((2, 3, 3), np.uint8))
    >>> data[:8], struct.unpack(">II", data[16:24])
    (b'\\x89PNG\\r\\n\\x1a\\n', (3, 2))
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected an RGB image (H, W, 3) of uint8, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    # Filter "Up" on every row (the row above the first is zeros): flat colours compress to little.
    rows = np.ascontiguousarray(image).reshape(height, 3 * width)
    filtered = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[:, 1:] = rows
    filtered[1:, 1:] -= rows[:-1]  # uint8 arithmetic wraps, as PNG's filter does

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclasses.dataclass
class _Entry:
    numbers: dict[str, Any]
    frame: bytes
    first_person: bytes | None


class ReplayView:
    """A replay file opened for viewing: any world at any step, as numbers and pictures.

    One replay manager (``SimManager.from_replay``) behind a lock is sought to each step asked
    for; results are kept in an LRU cache of ``cache_entries`` (world, step) pairs. A bad file
    raises the reader's error here (``ReplayFormatError``, ``FileNotFoundError``, ...); a truncated
    one warns (``ReplayTruncatedWarning``) and shows its readable steps. When the replay diverges
    from its recording, the diverging step is still shown (marked) and later steps raise
    :class:`StepUnavailable`.

    >>> import os, tempfile, escape_room_env as er
    >>> path = os.path.join(tempfile.mkdtemp(), "two.bin")
    >>> with er.SimManager(num_worlds=2, num_agents=2) as sim, sim.recording(path, seed=3):
    ...     sim.step(nstep=4)
    >>> with ReplayView(path) as view:
    ...     numbers = view.step(0, 4)
    ...     view.metadata.num_steps, [len(a["position"]) for a in numbers["agents"]], numbers["agents"][0]["done"]
    (4, [2, 2], 0)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        first_person: bool = False,
        pixels_per_metre: float = 8.0,
        cache_entries: int = 1024,
    ):
        from escape_room_env.manager import SimManager

        scale = float(pixels_per_metre)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"pixels_per_metre must be a positive finite number, got {pixels_per_metre!r}")
        # The reader once for the metadata and the checkpoints, its truncation warnings kept for
        # the page and passed on to the caller; the manager's second reading stays quiet.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ReplayTruncatedWarning)
            with ReplayFile(path) as replay:
                self.metadata = replay.metadata
                self.checkpoints: list[int] = replay.checkpoint_steps().tolist()
        self.notes = [str(w.message) for w in caught if issubclass(w.category, ReplayTruncatedWarning)]
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReplayTruncatedWarning)
            self.sim = SimManager.from_replay(path, enable_batch_renderer=bool(first_person))
        self.path = os.fsdecode(path)
        self.first_person = bool(first_person)
        self.pixels_per_metre = scale
        self.diverged: dict[str, Any] | None = None
        """None, or where the replay diverged: {"step": k, "message": the ReplayDivergenceError's}."""
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple[int, int], _Entry] = collections.OrderedDict()
        self._cache_entries = max(0, int(cache_entries))
        self._position: int | None = 0  # the step whose outputs the manager holds (None: unknown)
        sim = self.sim
        self._tensors = {
            name: sim.tensor(name).to_numpy()
            for name in ("action", "reward", "done", "termination_reason", "progress")
        }

    # -- what the page asks for

    @property
    def num_steps(self) -> int:
        """The recorded steps the file holds (the readable ones of a truncated file)."""
        return self.metadata.num_steps

    @property
    def max_step(self) -> int:
        """The last step that can be shown: the file's last, or the step the replay diverged at."""
        return self.num_steps if self.diverged is None else self.diverged["step"]

    @property
    def cached(self) -> int:
        """(world, step) results held in the cache now (at most ``cache_entries``)."""
        return len(self._cache)

    def meta(self) -> dict[str, Any]:
        """The file's description for the page (JSON-ready)."""
        meta = self.metadata
        return {
            "file": os.path.basename(self.path),
            "num_worlds": meta.num_worlds,
            "num_agents": meta.num_agents,
            "num_steps": meta.num_steps,
            "max_step": self.max_step,
            "complete": meta.complete,
            "autoreset_mode": meta.autoreset_mode.name,
            "episode_len": meta.episode_len,
            "seed": meta.seed,
            "checksum_interval": meta.checksum_interval,
            "checkpoints": self.checkpoints,
            "rooms": list(meta.rooms),
            "levels": [level.name or f"level {i}" for i, level in enumerate(meta.levels)],
            "first_person": self.first_person,
            "pixels_per_metre": self.pixels_per_metre,
            "notes": self.notes,
            "diverged": self.diverged,
            "worlds": None,  # every world (an --html file names the ones it holds)
            "world": 0,
        }

    def step(self, world: int, step: int) -> dict[str, Any]:
        """World ``world`` after recorded step ``step`` (0: the start): agents (position, yaw,
        progress, the step's action, reward, done, termination reason), doors, buttons, cubes, and
        the checkpoint status; JSON-ready, floats exactly the simulator's."""
        numbers = self._entry(world, step).numbers
        return {**numbers, "diverged": self.diverged}

    def frame(self, world: int, step: int) -> bytes:
        """The top-down picture (PNG) of ``world`` after ``step``: ``render.picture``'s pixels."""
        return self._entry(world, step).frame

    def first_person_frame(self, world: int, step: int) -> bytes:
        """The agents' first-person images side by side (PNG); needs ``first_person=True``."""
        if not self.first_person:
            raise ValueError("first-person images need the batch renderer: view the file with --first-person")
        image = self._entry(world, step).first_person
        assert image is not None
        return image

    def check(self, world: int, step: int | None = None) -> tuple[int, int]:
        """``(world, step)`` as ints, or ``ValueError`` naming the one out of range."""
        if isinstance(world, bool) or not isinstance(world, (int, np.integer)):
            raise TypeError(f"world must be an int, got {type(world).__name__}")
        num_worlds = self.metadata.num_worlds
        if not 0 <= world < num_worlds:
            raise ValueError(
                f"world {world} out of range: the replay has {num_worlds} worlds (0..{num_worlds - 1})"
            )
        step = 0 if step is None else step
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        if not 0 <= step <= self.num_steps:
            raise ValueError(f"step {step} is outside the recording (0..{self.num_steps})")
        return int(world), int(step)

    def close(self) -> None:
        """Closes the replay manager (waiting for a request being computed)."""
        with self._lock:
            self.sim.close()
            self._cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- computing

    def _entry(self, world: int, step: int) -> _Entry:
        world, step = self.check(world, step)
        key = (world, step)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                return entry
            self._goto(step)
            entry = self._read(world, step)
            if self._cache_entries:
                self._cache[key] = entry
                while len(self._cache) > self._cache_entries:
                    self._cache.popitem(last=False)
            return entry

    def _goto(self, step: int) -> None:
        """Positions the manager after recorded step ``step`` with that step's outputs, its actions
        in the action tensor (reached by replaying step ``step`` itself)."""
        if self._position == step:
            return
        if self.diverged is not None and step > self.diverged["step"]:
            raise StepUnavailable(self._unavailable(step))
        self._position = None
        try:
            if step == 0:
                self.sim.seek(0)
            else:
                self.sim.seek(step - 1)
                self.sim.replay_step()
        except ReplayDivergenceError as error:
            # The manager stays after the step whose checkpoint failed, with its outputs.
            at = self.sim.get_replay_step_count()[0]
            if self.diverged is None or at < self.diverged["step"]:
                self.diverged = {"step": at, "message": str(error)}
            if at != step:
                raise StepUnavailable(self._unavailable(step)) from None
        self._position = step

    def _unavailable(self, step: int) -> str:
        assert self.diverged is not None
        return (
            f"step {step} is after step {self.diverged['step']}, where the replay diverged from the "
            f"recording: {self.diverged['message']}"
        )

    def _checkpoint(self, step: int) -> dict[str, Any]:
        """Which of the file's checkpoints the replay has verified by ``step``."""
        checkpoints = self.checkpoints
        passed = bisect.bisect_right(checkpoints, step)
        diverged = self.diverged is not None and step >= self.diverged["step"]
        return {
            "status": "diverged" if diverged else "verified",
            "verified": passed - diverged,
            "total": len(checkpoints),
            "last": checkpoints[passed - 1] if passed else None,
            "next": checkpoints[passed] if passed < len(checkpoints) else None,
            "here": passed > 0 and checkpoints[passed - 1] == step,
            "message": self.diverged["message"] if diverged and self.diverged else None,
        }

    def _read(self, world: int, step: int) -> _Entry:
        """The numbers and pictures of ``world`` from the manager as it is now."""
        sim, t = self.sim, self._tensors
        view = sim.world(world)
        agents = []
        for i in range(sim.num_agents):
            agent = view.agent(i)
            x, y = (float(v) for v in agent.position)
            agents.append(
                {
                    "position": [x, y],
                    "yaw": agent.yaw,
                    "progress": float(t["progress"][world, i, 0]),
                    "escaped": agent.escaped,
                    "action": None if step == 0 else [int(v) for v in t["action"][world, i]],
                    "reward": float(t["reward"][world, i, 0]),
                    "done": int(t["done"][world, i, 0]),
                    "termination_reason": int(t["termination_reason"][world, i, 0]),
                }
            )
        level = view.level
        numbers = {
            "world": world,
            "step": step,
            "episode": view.episode,
            "steps_left": view.steps_left,
            "level": None if level is None else (self.metadata.levels[level].name or f"level {level}"),
            "agents": agents,
            "doors": [
                {"open": view.door(k).is_open, "group": view.door(k).group} for k in range(view.num_doors)
            ],
            "buttons": [
                {"pressed": view.button(k).pressed, "group": view.button(k).group}
                for k in range(view.num_buttons)
            ],
            "cubes": [[float(v) for v in view.cube(k).position] for k in range(view.num_cubes)],
            "checkpoint": self._checkpoint(step),
        }
        frame = png_bytes(picture(Scene.from_world(sim, world), pixels_per_metre=self.pixels_per_metre))
        first_person = None
        if self.first_person:
            height = sim.host_array("rgb").shape[2]
            first_person = png_bytes(first_person_strip(sim, world, height))
        return _Entry(numbers, frame, first_person)


# -- the page ------------------------------------------------------------------------------------


def _static(name: str) -> str:
    return (importlib.resources.files("escape_room_env") / "viewer_static" / name).read_text("utf-8")


def page_html(embedded: dict[str, Any] | None = None) -> str:
    """The viewer page: its style and script inline; ``embedded`` (what ``--html`` holds) or, for
    the server, None (the page then asks the server's routes).

    >>> page = page_html()
    >>> page.startswith("<!DOCTYPE html>"), "window.ER_EMBEDDED = null;" in page, "://" in page
    (True, True, False)
    """
    # JSON inside <script>: "<" escaped, so no "</script>" or "<!--" can end it early.
    data = "null" if embedded is None else json.dumps(embedded, allow_nan=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c")
    page = _static("index.html")
    for marker, text in (("/*STYLE*/", _static("viewer.css")), ("/*SCRIPT*/", _static("viewer.js"))):
        page = page.replace(marker, text, 1)
    return page.replace("/*DATA*/null", data, 1)


def write_html(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    worlds: tuple[int, ...] | list[int] = (0,),
    first_person: bool = False,
    pixels_per_metre: float = 8.0,
    max_steps: int | None = None,
    max_frames: int | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Writes the viewer page for replay ``path`` to ``out`` as one self-contained file: every step
    (up to ``max_steps``) of each of ``worlds``, its frames as data URIs, replayed and verified in
    one pass. More than ``max_frames`` frames (default :data:`HTML_MAX_FRAMES`), or a file of more
    than ``max_bytes`` (:data:`HTML_MAX_BYTES`), raise ``ValueError`` before anything is written. Returns what it wrote: ``{"worlds", "steps",
    "bytes", "diverged"}``.

    >>> import os, tempfile, escape_room_env as er
    >>> folder = tempfile.mkdtemp()
    >>> with er.SimManager(num_worlds=2) as sim, sim.recording(os.path.join(folder, "r.bin"), seed=1):
    ...     sim.step(nstep=5)
    >>> written = write_html(os.path.join(folder, "r.bin"), os.path.join(folder, "r.html"), worlds=[0, 1])
    >>> written["worlds"], written["steps"], written["diverged"]
    ([0, 1], 5, None)
    """
    max_frames = HTML_MAX_FRAMES if max_frames is None else max_frames
    max_bytes = HTML_MAX_BYTES if max_bytes is None else max_bytes
    worlds = list(dict.fromkeys(int(w) for w in worlds))  # in order, once each
    if not worlds:
        raise ValueError("--html needs at least one world")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"--max-steps must be >= 0, got {max_steps}")
    with ReplayView(
        path, first_person=first_person, pixels_per_metre=pixels_per_metre, cache_entries=0
    ) as view:
        for w in worlds:
            view.check(w)
        last = view.num_steps if max_steps is None else min(view.num_steps, max_steps)
        frames = len(worlds) * (last + 1)
        if frames > max_frames:
            raise ValueError(
                f"--html would embed {frames:,} frames ({len(worlds)} world(s) x {last + 1:,} steps), more "
                f"than the {max_frames:,} one file may hold: choose fewer steps (--max-steps) or fewer worlds, "
                "or serve the file instead (without --html)"
            )
        steps: dict[str, list[dict[str, Any]]] = {str(w): [] for w in worlds}
        size = 0
        for step in range(last + 1):
            view._goto(step)  # the divergence, if any, is at the last step shown
            for w in worlds:
                entry = view._read(w, step)
                numbers = dict(entry.numbers, frame=_data_uri(entry.frame))
                numbers["first_person"] = (
                    None if entry.first_person is None else _data_uri(entry.first_person)
                )
                size += len(numbers["frame"]) + len(numbers["first_person"] or "") + 1000
                if size > max_bytes:
                    raise ValueError(
                        f"--html would be larger than {max_bytes / (1 << 20):.0f} MiB by step {step}: choose "
                        "fewer steps (--max-steps), fewer worlds or a smaller --scale, or serve the file instead"
                    )
                steps[str(w)].append(numbers)
            if view.diverged is not None:
                break
        shown = len(steps[str(worlds[0])]) - 1
        for entries in steps.values():
            for numbers in entries:
                numbers["diverged"] = view.diverged
        meta = dict(view.meta(), worlds=worlds, world=worlds[0], max_step=shown)
        page = page_html({"meta": meta, "worlds": steps})
        diverged = view.diverged
    data = page.encode("utf-8")
    with open(out, "wb") as f:
        f.write(data)
    return {"worlds": worlds, "steps": shown, "bytes": len(data), "diverged": diverged}


# -- the server ----------------------------------------------------------------------------------


class _BadRequest(ValueError):
    pass


def _int_param(query: dict[str, list[str]], name: str) -> int:
    values = query.get(name)
    if not values or len(values) != 1:
        raise _BadRequest(f"expected one {name}=<integer> in the query")
    try:
        return int(values[0], 10)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, got {values[0][:40]!r}") from None


def _json(value: Any) -> tuple[int, bytes, str]:
    body = json.dumps(value, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return 200, body, "application/json"


def _route_page(server: ViewerServer, query) -> tuple[int, bytes, str]:
    return 200, server.page, "text/html; charset=utf-8"


def _route_meta(server: ViewerServer, query) -> tuple[int, bytes, str]:
    return _json(dict(server.view.meta(), world=server.world))


def _route_step(server: ViewerServer, query) -> tuple[int, bytes, str]:
    world, step = _int_param(query, "world"), _int_param(query, "step")
    numbers = server.view.step(world, step)
    where = f"world={world}&step={step}"
    numbers["frame"] = f"api/frame.png?{where}"
    numbers["first_person"] = f"api/first_person.png?{where}" if server.view.first_person else None
    return _json(numbers)


def _route_frame(server: ViewerServer, query) -> tuple[int, bytes, str]:
    return 200, server.view.frame(_int_param(query, "world"), _int_param(query, "step")), "image/png"


def _route_first_person(server: ViewerServer, query) -> tuple[int, bytes, str]:
    world, step = _int_param(query, "world"), _int_param(query, "step")
    return 200, server.view.first_person_frame(world, step), "image/png"


#: Every path the server answers; anything else is 404 (nothing is read from the disk by path).
_ROUTES: dict[str, Callable[[ViewerServer, dict], tuple[int, bytes, str]]] = {
    "/": _route_page,
    "/index.html": _route_page,
    "/api/meta": _route_meta,
    "/api/step": _route_step,
    "/api/frame.png": _route_frame,
    "/api/first_person.png": _route_first_person,
}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "escape-room-viewer"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, head: bool) -> None:
        # A page elsewhere that rebinds its DNS name to 127.0.0.1 sends its own name as Host.
        host = self.headers.get("Host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if hostname not in _HOSTS:
            return self._send(
                403, _error(f"forbidden host {host[:60]!r}: use http://127.0.0.1:<port>/"), head
            )
        parts = urllib.parse.urlsplit(self.path)
        route = _ROUTES.get(parts.path)
        if route is None or parts.netloc:
            return self._send(404, _error("not found"), head)
        try:
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, max_num_fields=8)
            status, body, kind = route(self.server, query)
        except (ValueError, TypeError) as e:  # _BadRequest, out-of-range world or step, bad query
            return self._send(400, _error(str(e)), head)
        except StepUnavailable as e:  # with where it diverged, for the page to go there
            return self._send(409, _error(str(e), diverged=self.server.view.diverged), head)
        except Exception as e:  # noqa: BLE001 - the page shows it; the server keeps serving
            return self._send(500, _error(f"{type(e).__name__}: {e}"), head)
        self._send(status, (body, kind), head)

    def _send(self, status: int, content: tuple[bytes, str], head: bool) -> None:
        body, kind = content
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if kind.startswith("text/html"):
            self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


def _error(message: str, **extra: Any) -> tuple[bytes, str]:
    body = {"error": " ".join(message.split()), **extra}
    return json.dumps(body).encode("utf-8"), "application/json"


class ViewerServer(http.server.ThreadingHTTPServer):
    """The viewer's HTTP server for a :class:`ReplayView`, bound to 127.0.0.1 only (``port`` 0:
    any free port). Routes: ``/`` (the page), ``/api/meta``, ``/api/step?world=&step=`` (JSON),
    ``/api/frame.png?world=&step=`` and ``/api/first_person.png?world=&step=`` (PNG); 404 for
    every other path, 400 for a bad query, 409 for a step after a divergence.

    >>> import json, os, tempfile, threading, urllib.request, escape_room_env as er
    >>> path = os.path.join(tempfile.mkdtemp(), "served.bin")
    >>> with er.SimManager(num_worlds=1) as sim, sim.recording(path, seed=1):
    ...     sim.step(nstep=2)
    >>> with ReplayView(path) as view, ViewerServer(view, port=0) as server:
    ...     thread = threading.Thread(target=server.serve_forever); thread.start()
    ...     meta = json.load(urllib.request.urlopen(server.url + "api/meta"))
    ...     server.shutdown(); thread.join()
    >>> server.server_address[0], meta["num_steps"]
    ('127.0.0.1', 2)
    """

    daemon_threads = True  # a browser's open keep-alive connection never holds up Ctrl-C

    def __init__(self, view: ReplayView, *, port: int = DEFAULT_PORT, world: int = 0, verbose: bool = False):
        self.view = view
        self.world = view.check(world)[0]
        self.verbose = verbose
        self.page = page_html(None).encode("utf-8")
        try:
            super().__init__(("127.0.0.1", int(port)), _Handler)
        except OSError as e:
            raise OSError(
                f"cannot listen on 127.0.0.1:{port}: {e.strerror or e} (choose another --port; 0 picks a free one)"
            ) from None

    @property
    def url(self) -> str:
        """The page's address, ``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.server_address[1]}/"


def _open_browser(url: str, out) -> None:
    """Opens the page where a graphical browser can be (a console browser would take over the
    terminal the server reports to), in the background."""
    import webbrowser

    if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    else:
        print(
            "no display here: open the address in a browser (over SSH, forward the port: ssh -L <port>:127.0.0.1:<port> <host>)",
            file=out,
            flush=True,
        )


def serve(
    path: str | os.PathLike,
    *,
    port: int = DEFAULT_PORT,
    world: int = 0,
    open_browser: bool = True,
    first_person: bool = False,
    pixels_per_metre: float = 8.0,
    out=None,
) -> int:
    """Serves the viewer for replay ``path`` on ``http://127.0.0.1:<port>/`` until Ctrl-C, which
    stops it cleanly (returns 0). The file is read and checked before anything listens: a bad file
    raises the reader's error."""
    out = sys.stdout if out is None else out
    view = ReplayView(path, first_person=first_person, pixels_per_metre=pixels_per_metre)
    try:
        server = ViewerServer(view, port=port, world=world)
    except BaseException:
        view.close()
        raise
    with server:
        meta = view.metadata
        print(
            f"viewing {view.path} ({meta.num_worlds} worlds, {meta.num_steps} steps) at {server.url} "
            "(Ctrl-C to stop)",
            file=out,
            flush=True,
        )
        if open_browser:
            _open_browser(server.url, out)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=out, flush=True)
    view.close()
    return 0
