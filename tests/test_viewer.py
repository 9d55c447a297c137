"""The replay viewer (issue 21): ``escape-room view FILE.bin`` and ``--html``.

Server-level tests talk HTTP to an in-process :class:`ViewerServer` (routes, binding, path
traversal, the numbers against a simulator of their own); the CLI runs in-process, and as a
subprocess where only a process can show Ctrl-C. Browser tests drive Debian's ``chromium``
through ``chromedriver``'s W3C WebDriver API with the standard library (no selenium), and skip
where either is absent.

``ESCAPE_ROOM_VIEWER_SCREENSHOT=docs/viewer.png pytest tests/test_viewer.py -k first_person``
saves the README's screenshot of the page.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import OUTSIDE_SOURCE, random_actions, step_spans

import escape_room_env as er
from escape_room_env.cli import main
from escape_room_env.render import Scene, first_person_strip, picture
from escape_room_env.viewer import ReplayView, ViewerServer, page_html, png_bytes

iio = pytest.importorskip("imageio.v3")  # an independent PNG decoder (the test extra has it)

STEPS = 60


def record(path: Path, *, steps: int = STEPS, checksum_interval: int = 20, seed: int = 5, **options) -> Path:
    """``steps`` steps of seeded random actions, recorded to ``path``."""
    rng = np.random.default_rng(seed)
    with (
        er.SimManager(num_threads=1, **options) as sim,
        sim.recording(path, seed=seed, checksum_interval=checksum_interval),
    ):
        actions = sim.action_tensor().to_numpy()
        for _ in range(steps):
            actions[:] = random_actions(rng, sim.num_worlds, sim.num_agents)
            sim.step()
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("viewer")


@pytest.fixture(scope="module")
def recording(folder) -> Path:
    """3 worlds of 2 agents, generated level, SAME_STEP episodes of 25 steps (some end)."""
    return record(folder / "two.bin", num_worlds=3, num_agents=2, episode_len=25, autoreset_mode="same_step")


KINDS: dict[str, dict] = {
    "generated, 2 agents, same_step": {},  # the `recording` fixture
    "custom levels, next_step": {
        "num_worlds": 2,
        "levels": ["corridor", "maze"],
        "autoreset_mode": "next_step",
        "episode_len": 15,
        "steps": 40,
    },
    "4 agents, disabled": {
        "num_worlds": 1,
        "num_agents": 4,
        "autoreset_mode": "disabled",
        "episode_len": 10,
        "steps": 20,
    },
}


@pytest.fixture(scope="module", params=list(KINDS))
def any_recording(request, folder, recording) -> Path:
    options = KINDS[request.param]
    if not options:
        return recording
    return record(folder / f"kind{list(KINDS).index(request.param)}.bin", **options)


@pytest.fixture(scope="module")
def diverging(folder, recording) -> Path:
    """``recording`` with world 1's rotate of step 26 edited (CRC fixed): the checkpoint of step 40
    fails."""
    data = bytearray(recording.read_bytes())
    start, end = step_spans(bytes(data))[25]
    rotate = start + 8 + 1 + 3 * 2 + 2  # payload: the reset bitset (1 byte), then [W, A, 3] int8
    data[rotate] = (data[rotate] + 1) % 5
    struct.pack_into("<I", data, end - 4, zlib.crc32(bytes(data[start : end - 4])))
    path = folder / "diverging.bin"
    path.write_bytes(bytes(data))
    return path


DIVERGES_AT = 40


class Reference:
    """What a replay manager of its own has at every step: read straight from its arrays after
    replaying the file step by step (not through the viewer's seeks)."""

    def __init__(self, path: Path, *, first_person: bool = False, worlds: list[int] | None = None):
        self.numbers: dict[tuple[int, int], dict] = {}
        self.pictures: dict[tuple[int, int], np.ndarray] = {}
        self.first_person: dict[tuple[int, int], np.ndarray] = {}
        with er.SimManager.from_replay(path, enable_batch_renderer=first_person) as sim:
            _, total = sim.get_replay_step_count()
            for step in range(total + 1):
                if step:
                    sim.replay_step()
                for w in range(sim.num_worlds) if worlds is None else worlds:
                    self.numbers[w, step] = self._numbers(sim, w, step)
                    self.pictures[w, step] = picture(Scene.from_world(sim, w), pixels_per_metre=8)
                    if first_person:
                        self.first_person[w, step] = first_person_strip(sim, w, sim.render_size[0])

    @staticmethod
    def _numbers(sim: er.SimManager, w: int, step: int) -> dict:
        a = sim.host_array
        agents = []
        for i in range(sim.num_agents):
            agents.append(
                {
                    "position": [float(v) for v in a("agent_pos")[w, i]],
                    "yaw": float(a("agent_yaw")[w, i]),
                    "progress": float(sim.progress_tensor().to_numpy()[w, i, 0]),
                    "escaped": bool(a("agent_escaped")[w, i]),
                    "action": None if step == 0 else sim.action_tensor().to_numpy()[w, i].tolist(),
                    "reward": float(sim.reward_tensor().to_numpy()[w, i, 0]),
                    "done": int(sim.done_tensor().to_numpy()[w, i, 0]),
                    "termination_reason": int(sim.termination_reason_tensor().to_numpy()[w, i, 0]),
                }
            )
        counts = a("level_counts")[w]
        pressed = int(sim.pressed_buttons()[w])
        return {
            "world": w,
            "step": step,
            "episode": int(a("episode")[w]),
            "steps_left": int(a("steps_left")[w]),
            "agents": agents,
            "doors": [bool(v) for v in a("door_open")[w, : counts[1]]],
            "buttons": [bool(pressed >> k & 1) for k in range(counts[2])],
            "cubes": a("cube_pos")[w, : counts[3]].tolist(),
        }


def assert_numbers_equal(got: dict, want: dict) -> None:
    assert got["world"] == want["world"] and got["step"] == want["step"]
    assert (got["episode"], got["steps_left"]) == (want["episode"], want["steps_left"])
    assert len(got["agents"]) == len(want["agents"])
    for mine, theirs in zip(got["agents"], want["agents"]):
        assert mine == theirs, (got["step"], mine, theirs)
    assert [door["open"] for door in got["doors"]] == want["doors"]
    assert [button["pressed"] for button in got["buttons"]] == want["buttons"]
    assert got["cubes"] == want["cubes"]


@pytest.fixture(scope="module")
def reference(recording) -> Reference:
    return Reference(recording)


class Served:
    """A ViewerServer in a thread, with HTTP helpers."""

    def __init__(self, path: Path, **options):
        self.view = ReplayView(path, first_person=options.pop("first_person", False))
        self.server = ViewerServer(self.view, port=0, **options)
        self.url = self.server.url
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def get(self, path: str, *, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes, str]:
        """The raw request line's path is sent as given (http.client does not normalise it)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type", "")
        finally:
            connection.close()

    def json(self, path: str) -> dict:
        status, body, kind = self.get(path)
        assert status == 200 and kind == "application/json", (status, body)
        return json.loads(body)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()
        self.view.close()


@pytest.fixture(scope="module")
def served(recording):
    server = Served(recording)
    yield server
    server.close()


# -- the server ----------------------------------------------------------------------------------


def test_the_server_listens_on_127_0_0_1_only(served):
    assert served.server.server_address[0] == "127.0.0.1"
    assert served.url == f"http://127.0.0.1:{served.port}/"
    # Another loopback address of this machine reaches a server bound to every interface; this one
    # is not listening there.
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.2", served.port), timeout=5),
    ):
        pass


TRAVERSALS = [
    "/../../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/..\\..\\etc\\passwd",
    "//etc/passwd",
    "/api/../../../etc/passwd",
    "/api/frame.png/../../../../etc/passwd",
    "/index.html/../../etc/passwd",
    "/etc/passwd",
    "/viewer.js",
    "/viewer_static/viewer.js",
    "/escape_room_env/viewer.py",
    "/api/meta/",
    "/api",
    "/index.html%00",
    "/favicon.ico",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_anything_but_the_routes_is_404(served, path):
    status, body, _ = served.get(path)
    assert status == 404, path
    assert b"root:" not in body and b"import" not in body


def test_the_routes_answer_with_their_content_types(served):
    status, page, kind = served.get("/")
    assert (status, kind) == (200, "text/html; charset=utf-8") and page.startswith(b"<!DOCTYPE html>")
    assert served.get("/index.html")[1] == page
    assert served.json("/api/meta")["num_steps"] == STEPS
    assert served.json("/api/step?world=1&step=3")["step"] == 3
    status, png, kind = served.get("/api/frame.png?world=1&step=3")
    assert (status, kind, png[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
    status, body, _ = served.get("/api/meta", method="HEAD")
    assert status == 200 and body == b""
    assert served.get("/api/meta", method="POST")[0] == 501
    assert served.get("/api/first_person.png?world=0&step=0")[0] == 400  # not started --first-person


def test_a_request_naming_another_host_is_refused(served):
    status, body, _ = served.get("/api/meta", headers={"Host": f"attacker.example:{served.port}"})
    assert status == 403 and b"forbidden host" in body
    assert served.get("/api/meta", headers={"Host": f"localhost:{served.port}"})[0] == 200


@pytest.mark.parametrize(
    "query",
    ["", "?world=0", "?step=1", "?world=a&step=1", "?world=0&step=1.5", "?world=0&step=-1",
     f"?world=0&step={STEPS + 1}", "?world=3&step=0", "?world=0&world=1&step=0"],
)  # fmt: skip
def test_a_bad_query_is_400_with_a_message(served, query):
    status, body, kind = served.get("/api/step" + query)
    assert (status, kind) == (400, "application/json")
    assert json.loads(body)["error"]


def test_the_step_route_gives_the_simulators_numbers_in_any_order(any_recording):
    reference = Reference(any_recording)
    server = Served(any_recording)
    try:
        meta = server.json("/api/meta")
        total = meta["num_steps"]
        steps = [0, 1, 2, total // 2, total // 2 - 1, total, 5, total - 1, 0, 3 * total // 4, 1]
        for step in steps:
            for w in range(meta["num_worlds"]):
                got = server.json(f"/api/step?world={w}&step={step}")
                assert_numbers_equal(got, reference.numbers[w, step])
                assert got["checkpoint"]["status"] == "verified" and got["diverged"] is None
    finally:
        server.close()


def test_the_frame_route_is_render_picture(served, reference):
    for w, step in [(0, 0), (2, 37), (1, STEPS), (2, 36)]:
        status, png, _ = served.get(f"/api/frame.png?world={w}&step={step}")
        assert status == 200
        assert np.array_equal(iio.imread(io.BytesIO(png)), reference.pictures[w, step])


def test_png_bytes_decodes_to_the_image():
    image = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(iio.imread(io.BytesIO(png_bytes(image))), image)


def test_the_checkpoint_status_follows_the_files_checkpoints(served):
    assert served.json("/api/meta")["checkpoints"] == [0, 20, 40, 60]
    status = served.json("/api/step?world=0&step=25")["checkpoint"]
    assert status == {
        "status": "verified", "verified": 2, "total": 4, "last": 20, "next": 40, "here": False, "message": None,
    }  # fmt: skip
    assert served.json("/api/step?world=0&step=40")["checkpoint"]["here"] is True


def test_the_cache_stays_bounded(recording):
    with ReplayView(recording, cache_entries=4) as view:
        for step in range(10):
            view.step(0, step)
            assert view.cached <= 4
        assert view.cached == 4


def test_a_diverging_replay_is_shown_up_to_the_failed_checkpoint(diverging):
    server = Served(diverging)
    try:
        assert server.json("/api/step?world=1&step=39")["checkpoint"]["status"] == "verified"
        status, body, _ = server.get(f"/api/step?world=1&step={DIVERGES_AT + 1}")
        assert status == 409 and json.loads(body)["diverged"]["step"] == DIVERGES_AT
        at = server.json(f"/api/step?world=1&step={DIVERGES_AT}")
        assert at["checkpoint"]["status"] == "diverged"
        assert at["diverged"]["step"] == DIVERGES_AT and "diverged at step 40" in at["diverged"]["message"]
        meta = server.json("/api/meta")
        assert meta["max_step"] == DIVERGES_AT and meta["num_steps"] == STEPS
        # Earlier steps stay available, verified.
        assert server.json("/api/step?world=0&step=10")["checkpoint"]["status"] == "verified"
    finally:
        server.close()


def test_a_truncated_file_serves_its_readable_steps(folder, recording):
    data = recording.read_bytes()
    cut = folder / "cut.bin"
    start, _ = step_spans(data)[30]
    cut.write_bytes(data[: start + 20])  # inside step 31: steps 1..30 remain
    with pytest.warns(er.replay.ReplayTruncatedWarning):
        server = Served(cut)
    try:
        meta = server.json("/api/meta")
        assert (meta["num_steps"], meta["complete"]) == (30, False) and "STEP record" in meta["notes"][0]
        assert server.json("/api/step?world=2&step=30")["step"] == 30
        assert server.get("/api/step?world=2&step=31")[0] == 400
    finally:
        server.close()


def test_the_page_and_its_assets_ship_in_the_package():
    import importlib.resources

    static = importlib.resources.files("escape_room_env") / "viewer_static"
    assert {"index.html", "viewer.js", "viewer.css"} <= {f.name for f in static.iterdir()}
    page = page_html()
    assert "/*STYLE*/" not in page and "/*SCRIPT*/" not in page and "window.ER_EMBEDDED = null;" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page), "the page loads nothing from outside"


# -- the command line -----------------------------------------------------------------------------


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("escape-room: error: ") and "Traceback" not in err, err
    return lines[0]


def test_a_bad_file_is_the_readers_error_in_one_line(capsys, tmp_path):
    bad = tmp_path / "notes.bin"
    bad.write_bytes(b"hello, this is not a replay file" * 8)
    for extra in ((), ("--html", tmp_path / "out.html")):
        rc, out, err = run(capsys, "view", bad, "--no-browser", *extra)
        assert (rc, out) == (1, "")
        assert "ReplayFormatError" in one_line_error(err) and "bad magic" in err
    rc, _, err = run(capsys, "view", tmp_path / "missing.bin", "--no-browser", "--port", 0)
    assert (
        rc == 1
        and one_line_error(err) == f"escape-room: error: {tmp_path}/missing.bin: No such file or directory"
    )
    assert not (tmp_path / "out.html").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--world", 3), "world 3 out of range"),
        (("--world", 0, "--world", 1), "--world once"),
        (("--max-steps", 5), "--max-steps needs --html"),
        (("--html", "x.html", "--port", 9000), "--port needs the server"),
        (("--scale", 0), "pixels_per_metre must be a positive"),
        (("--html", "x.html", "--max-steps", -1), "--max-steps must be >= 0"),
    ],
)
def test_an_invalid_argument_is_one_line_and_exit_2(capsys, monkeypatch, recording, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    port = () if "--html" in args else ("--port", 0)  # never the default port, should a check be missing
    rc, _, err = run(capsys, "view", recording, "--no-browser", *port, *args)
    assert rc == 2 and message in one_line_error(err)
    assert not (tmp_path / "x.html").exists()


def embedded(html: Path) -> dict:
    text = html.read_text("utf-8")
    match = re.search(r"window\.ER_EMBEDDED = (.*?);</script>", text, re.DOTALL)
    assert match
    return json.loads(match.group(1))


def decode_uri(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return iio.imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_html_is_one_self_contained_file_with_every_step(capsys, tmp_path, recording, reference):
    out = tmp_path / "page.html"
    rc, stdout, err = run(capsys, "view", recording, "--html", out, "--world", 2, "--world", 0)
    assert rc == 0 and err == "" and f"steps 0..{STEPS} of world(s) 2, 0" in stdout
    text = out.read_text("utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)|https?://""", text), "nothing is loaded from elsewhere"
    data = embedded(out)
    assert data["meta"]["worlds"] == [2, 0] and data["meta"]["max_step"] == STEPS
    for w in (2, 0):
        steps = data["worlds"][str(w)]
        assert len(steps) == STEPS + 1
        for step in (0, 17, STEPS):
            assert_numbers_equal(steps[step], reference.numbers[w, step])
            assert np.array_equal(decode_uri(steps[step]["frame"]), reference.pictures[w, step])
    assert "1" not in data["worlds"]


def test_html_over_the_cap_is_refused_with_a_message(capsys, tmp_path, recording, monkeypatch):
    from escape_room_env import viewer

    monkeypatch.setattr(viewer, "HTML_MAX_FRAMES", 100)
    out = tmp_path / "big.html"
    rc, _, err = run(capsys, "view", recording, "--html", out, "--world", 0, "--world", 1)
    assert rc == 2 and "122 frames (2 world(s) x 61 steps), more than the 100" in one_line_error(err)
    assert not out.exists()
    rc, stdout, _ = run(capsys, "view", recording, "--html", out, "--world", 0, "--max-steps", 40)
    assert rc == 0 and "steps 0..40 of world(s) 0" in stdout


def test_html_of_a_diverging_replay_stops_at_the_divergence_and_says_so(capsys, tmp_path, diverging):
    out = tmp_path / "diverging.html"
    rc, stdout, err = run(capsys, "view", diverging, "--html", out, "--world", 1)
    assert rc == 0 and f"steps 0..{DIVERGES_AT}" in stdout
    assert (
        err.startswith("escape-room: warning: UserWarning: the page stops at step 40")
        and len(err.splitlines()) == 1
    )
    data = embedded(out)
    assert len(data["worlds"]["1"]) == DIVERGES_AT + 1 and data["meta"]["diverged"]["step"] == DIVERGES_AT
    assert data["worlds"]["1"][-1]["checkpoint"]["status"] == "diverged"


def cli_process(*args) -> subprocess.Popen:
    code = "import sys\nfrom escape_room_env.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=OUTSIDE_SOURCE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_line(proc: subprocess.Popen, timeout: float = 60) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the viewer printed nothing"
    return proc.stdout.readline()


def test_ctrl_c_stops_the_server_cleanly(recording):
    proc = cli_process("view", recording, "--no-browser", "--port", 0)
    try:
        line = first_line(proc)
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert url, line
        with urllib.request.urlopen(url.group(0) + "api/meta", timeout=30) as response:
            assert json.load(response)["num_worlds"] == 3
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and err == "" and out.strip() == "stopped"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url.group(0), timeout=5)


def test_a_port_in_use_is_one_line(capsys, recording):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = run(capsys, "view", recording, "--no-browser", "--port", port)
    assert rc == 1 and f"cannot listen on 127.0.0.1:{port}" in one_line_error(err)


# -- in a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)
ENTER, SHIFT, LEFT, RIGHT, END = "\ue007", "\ue008", "\ue012", "\ue014", "\ue010"


class Browser:
    """Headless chromium through chromedriver's W3C WebDriver HTTP API (the standard library only)."""

    def __init__(self, size=(1200, 760)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/status", timeout=2) as response:
                    if json.load(response)["value"]["ready"]:
                        break
            except (OSError, ValueError):
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        args = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--window-size={size[0]},{size[1]}", "--force-device-scale-factor=1",
            "--force-color-profile=srgb", "--hide-scrollbars", "--allow-file-access-from-files",
        ]  # fmt: skip
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }
        try:
            self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})[
                "sessionId"
            ]
        except BaseException:
            self.driver.kill()
            raise

    def _call(self, method: str, path: str, body=None):
        if body is None and method == "POST":
            body = {}  # W3C: every POST carries a JSON object
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode()[:500]}") from None

    def cmd(self, method: str, path: str, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})
        self.logs()  # start each page with an empty log

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/click")

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self.cmd("POST", f"/element/{element}/clear")
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def keys(self, *keys: str, shift: bool = False) -> None:
        """Presses each key in turn (with Shift held if asked), as the user's keyboard would."""
        actions = [{"type": "keyDown", "value": SHIFT}] if shift else []
        for key in keys:
            actions += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        if shift:
            actions.append({"type": "keyUp", "value": SHIFT})
        self.cmd("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})
        self.cmd("DELETE", "/actions")

    def screenshot(self, css: str | None = None) -> np.ndarray:
        path = "/screenshot" if css is None else f"/element/{self.find(css)}/screenshot"
        return iio.imread(io.BytesIO(base64.b64decode(self.cmd("GET", path))))[..., :3]

    def logs(self) -> list[dict]:
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def wait_shown(self, world: int, step: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.js("return document.body.dataset.shown || null") != f"{world}:{step}":
            assert time.monotonic() < deadline, (
                f"the page shows {self.js('return document.body.dataset.shown || null')}, "
                f"expected {world}:{step}; error: {self.js('return document.getElementById(`error`).textContent')}"
            )
            time.sleep(0.05)

    def shown(self) -> dict:
        """What the page displays: the step, the world, and each agent's row of the table."""
        return self.js(
            """
            const text = (id) => document.getElementById(id).textContent;
            const rows = [...document.querySelectorAll("#agents tbody tr")];
            return {
              step: text("step"), world: text("world-shown"), checkpoint: text("checkpoint"),
              agents: rows.map((row) => Object.fromEntries(
                [...row.cells].map((cell) => [cell.dataset.field, cell.textContent]))),
            };
            """
        )

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(10)


def assert_page_shows(browser: Browser, want: dict) -> None:
    """The page's step, positions, rewards, actions and dones are the simulator's (to the digits
    shown)."""
    page = browser.shown()
    assert (int(page["step"]), int(page["world"])) == (want["step"], want["world"])
    assert len(page["agents"]) == len(want["agents"])
    for row, agent in zip(page["agents"], want["agents"]):
        assert abs(float(row["x"]) - agent["position"][0]) <= 5e-4 + 1e-9, (row, agent)
        assert abs(float(row["y"]) - agent["position"][1]) <= 5e-4 + 1e-9, (row, agent)
        assert abs(float(row["reward"]) - agent["reward"]) <= 5e-6 + 1e-9, (row, agent)
        assert abs(float(row["progress"]) - agent["progress"]) <= 5e-4 + 1e-9, (row, agent)
        action = "\u2013" if agent["action"] is None else " ".join(map(str, agent["action"]))
        assert (row["action"], int(row["done"])) == (action, agent["done"])


def severe(logs: list[dict]) -> list[dict]:
    return [entry for entry in logs if entry.get("level") == "SEVERE"]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        )
    b = Browser()
    yield b
    b.close()


@needs_browser
def test_the_page_loads_without_console_errors_or_outside_requests(browser, served):
    browser.open(served.url)
    browser.wait_shown(0, 0)
    assert browser.js("return document.body.dataset.ready") == "1"
    assert severe(browser.logs()) == []
    resources = browser.js("return performance.getEntriesByType('resource').map((r) => r.name)")
    assert resources and all(url.startswith(served.url) for url in resources), resources
    assert "Space" in browser.js("return document.getElementById('shortcuts').textContent")


@needs_browser
def test_stepping_forward_and_back_shows_the_replay_managers_states(browser, served, reference):
    browser.open(served.url)
    browser.wait_shown(0, 0)
    assert_page_shows(browser, reference.numbers[0, 0])
    for step in (1, 2, 3):
        browser.click("#forward")
        browser.wait_shown(0, step)
        assert_page_shows(browser, reference.numbers[0, step])
    browser.click("#back")
    browser.wait_shown(0, 2)
    assert_page_shows(browser, reference.numbers[0, 2])
    browser.keys(RIGHT, shift=True)  # ten forward
    browser.wait_shown(0, 12)
    assert_page_shows(browser, reference.numbers[0, 12])
    browser.keys(LEFT)
    browser.wait_shown(0, 11)
    assert_page_shows(browser, reference.numbers[0, 11])
    browser.keys(END)
    browser.wait_shown(0, STEPS)
    assert_page_shows(browser, reference.numbers[0, STEPS])
    browser.click("#back")
    browser.wait_shown(0, STEPS - 1)
    assert_page_shows(browser, reference.numbers[0, STEPS - 1])
    assert severe(browser.logs()) == []


@needs_browser
def test_the_top_down_canvas_matches_render_picture(browser, served, reference):
    browser.open(served.url + "?world=2&step=37")
    browser.wait_shown(2, 37)
    shot = browser.screenshot("#topdown").astype(int)
    want = reference.pictures[2, 37].astype(int)
    assert shot.shape == want.shape
    difference = np.abs(shot - want)
    assert difference.mean() < 1.0 and (difference.max(axis=-1) > 8).mean() < 0.005


@needs_browser
def test_the_world_selector_and_jump_to_step_work(browser, served, reference):
    browser.open(served.url)
    browser.wait_shown(0, 0)
    browser.click('#world option[value="2"]')
    browser.wait_shown(2, 0)
    assert_page_shows(browser, reference.numbers[2, 0])
    browser.type("#jump", f"45{ENTER}")
    browser.wait_shown(2, 45)
    assert_page_shows(browser, reference.numbers[2, 45])
    browser.click('#world option[value="1"]')  # the step stays
    browser.wait_shown(1, 45)
    assert_page_shows(browser, reference.numbers[1, 45])
    browser.keys("[")  # the previous world
    browser.wait_shown(0, 45)
    browser.type("#jump", "17")
    browser.click("#go")
    browser.wait_shown(0, 17)
    assert_page_shows(browser, reference.numbers[0, 17])
    browser.type("#jump", f"{STEPS + 5}{ENTER}")  # out of range: a message, the step stays
    assert browser.js("return document.getElementById('error').hidden") is False
    assert f"0 to {STEPS}" in browser.js("return document.getElementById('error').textContent")
    assert browser.js("return document.body.dataset.shown") == "0:17"
    assert severe(browser.logs()) == []


@needs_browser
def test_a_file_of_many_worlds_gets_a_number_box_for_the_world(browser, folder):
    many = record(folder / "many.bin", num_worlds=1100, steps=3)
    reference = Reference(many, worlds=[1098, 1099])
    server = Served(many)
    try:
        browser.open(server.url)
        browser.wait_shown(0, 0)
        assert browser.js("return document.getElementById('world').type") == "number"
        browser.type("#world", f"1099{ENTER}")
        browser.wait_shown(1099, 0)
        browser.keys(RIGHT, RIGHT)
        browser.wait_shown(1099, 2)
        assert_page_shows(browser, reference.numbers[1099, 2])
        browser.keys("[")
        browser.wait_shown(1098, 2)
        assert_page_shows(browser, reference.numbers[1098, 2])
        assert severe(browser.logs()) == []
    finally:
        server.close()


@needs_browser
def test_play_advances_and_pause_holds_the_step(browser, served, reference):
    browser.open(served.url + "?world=1")
    browser.wait_shown(1, 0)
    browser.click('#speed option[value="6"]')  # 16x
    browser.keys(" ")
    deadline = time.monotonic() + 20
    while int(browser.js("return document.getElementById('step').textContent")) < 8:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    browser.click("#play")  # pause
    time.sleep(0.3)
    step = int(browser.js("return document.getElementById('step').textContent"))
    time.sleep(0.4)
    assert int(browser.js("return document.getElementById('step').textContent")) == step
    browser.wait_shown(1, step)
    assert_page_shows(browser, reference.numbers[1, step])
    assert browser.js("return document.getElementById('play').textContent") == "Play"


@needs_browser
def test_a_diverging_replay_is_marked_on_the_page(browser, diverging):
    server = Served(diverging)
    try:
        browser.open(server.url + "?world=1&step=38")
        browser.wait_shown(1, 38)
        assert "verified" in browser.shown()["checkpoint"]
        browser.keys(RIGHT, shift=True)  # ten forward: only two are there
        browser.wait_shown(1, DIVERGES_AT)
        assert browser.js("return document.getElementById('checkpoint').dataset.status") == "diverged"
        banner = browser.js("return document.getElementById('diverged')")
        assert banner and "at step 40" in browser.js("return document.getElementById('diverged').textContent")
        assert browser.js("return document.getElementById('timeline').max") == str(DIVERGES_AT)
    finally:
        server.close()


@needs_browser
def test_the_html_file_plays_in_the_browser(browser, tmp_path, recording, reference):
    out = tmp_path / "page.html"
    assert main(["view", str(recording), "--html", str(out), "--world", "0", "--world", "2"]) == 0
    browser.open(out.as_uri())
    browser.wait_shown(0, 0)
    browser.keys(RIGHT, RIGHT, RIGHT)
    browser.wait_shown(0, 3)
    assert_page_shows(browser, reference.numbers[0, 3])
    browser.click('#world option[value="2"]')
    browser.wait_shown(2, 3)
    assert_page_shows(browser, reference.numbers[2, 3])
    assert browser.js("return document.querySelectorAll('#world option').length") == 2
    shot = browser.screenshot("#topdown").astype(int)
    assert np.abs(shot - reference.pictures[2, 3].astype(int)).mean() < 1.0
    assert severe(browser.logs()) == []


@needs_browser
def test_first_person_images_show_when_asked(browser, recording):
    reference = Reference(recording, first_person=True)
    server = Served(recording, first_person=True)
    try:
        browser.open(server.url + "?world=1&step=22")
        browser.wait_shown(1, 22)
        assert browser.js("return document.getElementById('fp-figure').hidden") is False
        status, png, _ = server.get("/api/first_person.png?world=1&step=22")
        assert status == 200 and np.array_equal(iio.imread(io.BytesIO(png)), reference.first_person[1, 22])
        shot = browser.screenshot("#first-person").astype(int)
        want = np.kron(reference.first_person[1, 22], np.ones((2, 2, 1), dtype=np.uint8)).astype(int)
        assert shot.shape == want.shape and np.abs(shot - want).mean() < 1.0
        assert severe(browser.logs()) == []
        target = os.environ.get("ESCAPE_ROOM_VIEWER_SCREENSHOT")
        if target:  # the README's picture of the page
            iio.imwrite(target, browser.screenshot(), optimize=True)
    finally:
        server.close()
