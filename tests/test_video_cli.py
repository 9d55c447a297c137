"""Videos of replays (SPEC §6): ``escape-room replay FILE --video``, ``escape-room train --video``
and ``escape_room_env.render.replay_frames``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_python

import escape_room_env as er
from escape_room_env.render import Scene, picture, replay_frames, write_video

iio = pytest.importorskip("imageio.v3")


def run_cli(*args, timeout=300):
    return run_python("-m", "escape_room_env.cli", *args, timeout=timeout)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """12 recorded steps of 2 worlds x 2 agents, FAST FORWARD, and the top-down frames seen live."""
    path = tmp_path_factory.mktemp("video") / "run.bin"
    sim = er.SimManager(num_worlds=2, num_agents=2, rand_seed=4)
    sim.action_tensor().to_numpy()[:] = (3, 0, 2)
    with sim.recording(path, seed=4):  # the recording starts from its own seed's first state
        frames = [picture(Scene.from_world(sim, 1))]
        for _ in range(12):
            sim.step()
            frames.append(picture(Scene.from_world(sim, 1)))
    sim.close()
    return path, frames


def test_replay_frames_are_the_frames_seen_while_recording(recording):
    path, live = recording
    frames = list(replay_frames(str(path), world=1))
    assert len(frames) == 13
    for step, (got, expected) in enumerate(zip(frames, live)):
        np.testing.assert_array_equal(got, expected, err_msg=f"step {step}")


def test_replay_frames_with_first_person_images(recording):
    path, live = recording
    frames = list(replay_frames(str(path), world=1, first_person=True, max_steps=3))
    assert len(frames) == 4
    height, width = live[0].shape[:2]
    # The top-down view, then both agents' 64 x 64 images scaled by height // 64.
    scale = height // 64
    assert frames[0].shape == (height, width + 2 * 64 * scale, 3)
    np.testing.assert_array_equal(frames[0][:, :width], live[0])


def test_replay_frames_rejects_a_world_out_of_range(recording):
    with pytest.raises(ValueError, match="world 2 out of range: the replay has 2 worlds"):
        list(replay_frames(str(recording[0]), world=2))


@pytest.mark.parametrize("suffix", ["gif", "mp4"])
def test_replay_video_cli_writes_every_step(recording, tmp_path, suffix):
    if suffix == "mp4":
        pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / f"run.{suffix}"
    result = run_cli("replay", str(recording[0]), "--video", str(out), "--world", "1", "--scale", "4")
    assert result.returncode == 0, result.stderr
    assert f"wrote 13 frames of world 1 (every state hash verified on the way) to {out}" in result.stdout
    video = iio.imread(out, index=None)
    # The default level from above at 4 px/m: 22 m x 48 m with its outer walls.
    assert video.shape[1:] == (192, 88, 3)
    if suffix == "mp4":
        assert video.shape[0] == 13
    else:
        assert 2 <= video.shape[0] <= 13  # GIF writers merge identical consecutive frames


def test_replay_video_cli_reports_a_bad_path_and_a_corrupt_file(recording, tmp_path):
    result = run_cli("replay", str(recording[0]), "--video", str(tmp_path / "run.avi"))
    assert result.returncode == 2  # an invalid argument (ValueError)
    assert result.stderr == (
        f"escape-room: error: video path must end in .gif or .mp4, got '{tmp_path / 'run.avi'}'\n"
    )
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"NOTAREPLAY" * 20)
    result = run_cli("replay", str(broken), "--video", str(tmp_path / "x.gif"))
    assert result.returncode == 1 and not (tmp_path / "x.gif").exists()
    assert (
        result.stderr.startswith("escape-room: error: ReplayFormatError: ") and result.stderr.count("\n") == 1
    )


def test_write_video_refuses_no_frames(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_video([], str(tmp_path / "x.gif"))


def test_train_with_video_renders_the_trained_policy(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "policy.gif"
    result = run_cli(
        "train", "--num-envs", "8", "--num-steps", "16", "--total-timesteps", "256", "--save-dir", str(tmp_path),
        "--no-progress-bar", "--video", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 201 frames of world 0" in result.stdout
    assert iio.imread(out, index=None).ndim == 4
    assert len(list(tmp_path.glob("*/policy_replay.bin"))) == 1
