"""The ``escape-room`` command line.

escape-room train [--num-envs 1024] [--total-timesteps ...] [--max-minutes 15] ...
escape-room info [FILE] [--json]      (a replay's metadata, or the build, CUDA, threads)
escape-room record OUT / replay FILE  (recordings, SPEC §5.2)
escape-room render-level NAME|FILE    (a custom level's top-down picture, PNG)
escape-room bench                     (the quick core benchmark and its table)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One --flag per field of a config dataclass, its docstring as help (CleanRL's Args)."""
    docs = _field_docs(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if isinstance(default, bool):
            parser.add_argument(
                flag, default=default, action=argparse.BooleanOptionalAction, help=docs.get(field.name)
            )
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(
                flag, type=kind, default=default, help=f"{docs.get(field.name, '')} (default: {default})"
            )


def _field_docs(cls) -> dict[str, str]:
    """The string literal under each field of a dataclass (its one-line docstring)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        is_field = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if is_field and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            docs[node.target.id] = str(following.value.value)
    return docs


def _cmd_train(ns: argparse.Namespace) -> int:
    from escape_room_env.ppo import Args, train

    args = Args(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)})
    result = train(args)
    print(
        f"done: {result.global_step:,} steps in {result.seconds / 60:.1f} min, last {min(result.episodes, 1000)} "
        f"episodes: return {result.mean_return:+.3f}, progress {result.mean_progress:.2f} m, "
        f"first door {result.first_door_rate:.3f}, escape {result.escape_rate:.3f}"
    )
    if result.run_dir is not None:
        print(f"saved {result.run_dir / 'policy.pt'} and {result.run_dir / 'progress.csv'}")
    if ns.video:
        return _policy_video(ns, result.run_dir)
    return 0


def _policy_video(ns: argparse.Namespace, run_dir) -> int:
    """Records the trained policy for one episode (200 steps) in 4 worlds and renders world 0."""
    if run_dir is None:
        print("error: --video needs the run saved (a run directory)", file=sys.stderr)
        return 1
    replay = run_dir / "policy_replay.bin"
    record = argparse.Namespace(
        out=str(replay), steps=200, num_worlds=4, num_agents=ns.num_agents, seed=ns.seed,
        episode_len=200, autoreset_mode="same_step", checksum_interval=50,
        policy=str(run_dir / "policy.pt"), level=None,
    )  # fmt: skip
    if _cmd_record(record) != 0:
        return 1
    video = argparse.Namespace(
        file=str(replay), video=ns.video, world=0, first_person=True, max_steps=None, scale=8.0, fps=10.0
    )
    return _replay_video(video)


def _cmd_record(ns: argparse.Namespace) -> int:
    import numpy as np

    import escape_room_env as er

    sim = er.SimManager(
        num_worlds=ns.num_worlds,
        rand_seed=ns.seed,
        num_agents=ns.num_agents,
        autoreset_mode=ns.autoreset_mode,
        episode_len=ns.episode_len,
        levels=ns.level,
    )
    actions = sim.action_tensor().to_numpy()
    obs = sim.observation_tensor().to_numpy()
    policy = None
    if ns.policy:
        import torch

        from escape_room_env.ppo import load_agent

        policy = load_agent(ns.policy)
    rng = np.random.default_rng(ns.seed)
    done = sim.done_tensor().to_numpy()
    episodes = escapes = 0
    with sim.recording(ns.out, seed=ns.seed, checksum_interval=ns.checksum_interval):
        for _ in _steps(ns.steps, "recording"):
            if policy is None:
                actions[:] = rng.integers(0, (4, 8, 5), size=actions.shape)
            else:
                with torch.no_grad():
                    flat = policy.act(torch.from_numpy(obs.reshape(-1, obs.shape[-1]).copy()))
                actions[:] = flat.numpy().reshape(actions.shape)
            sim.step()
            finished = done[:, 0, 0] == 1
            episodes += int(finished.sum())
            escapes += int((sim.termination_reason_tensor().to_numpy()[finished, 0, 0] == 1).sum())
    who = f"policy {ns.policy}" if policy is not None else "random actions"
    print(
        f"recorded {ns.steps} steps of {ns.num_worlds} worlds ({who}) to {ns.out}: "
        f"{episodes} episodes ended, {escapes} escaped"
    )
    return 0


def _cmd_replay(ns: argparse.Namespace) -> int:
    import escape_room_env as er

    if ns.video:
        return _replay_video(ns)
    try:
        sim = er.SimManager.from_replay(ns.file)
        _, total = sim.get_replay_step_count()
        done = sim.done_tensor().to_numpy()
        episodes = 0
        for _ in _steps(total, "replaying"):
            sim.replay_step()
            episodes += int((done[:, 0, 0] == 1).sum())
    except (er.ReplayFormatError, er.ReplayDivergenceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = sim.read_replay_metadata(ns.file)
    checkpoints = sim.get_replay_checkpoints_verified()
    print(f"replayed {total} steps of {meta.num_worlds} worlds: {episodes} episodes ended")
    if ns.verify:
        print(
            f"verified: the state hashes of all {meta.num_worlds} worlds match at {checkpoints} checkpoints"
        )
    return 0


def _replay_video(ns: argparse.Namespace) -> int:
    import escape_room_env as er
    from escape_room_env.render import replay_frames, write_video

    try:
        frames = replay_frames(
            ns.file,
            world=ns.world,
            first_person=ns.first_person,
            max_steps=ns.max_steps,
            pixels_per_metre=ns.scale,
        )
        count = write_video(frames, ns.video, fps=ns.fps)
    except (er.ReplayFormatError, er.ReplayDivergenceError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {count} frames of world {ns.world} (every state hash verified on the way) to {ns.video}")
    return 0


def _steps(total: int, what: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return range(total)
    return tqdm(range(total), desc=what, unit="step", disable=total < 1000 or not sys.stderr.isatty())


def _cmd_info(ns: argparse.Namespace) -> int:
    import escape_room_env as er

    if ns.file is not None:
        return _replay_info(ns.file, ns.json)
    print(f"escape_room_env {er.__version__} (rules version {er.RULES_VERSION})")
    from escape_room_env import _core

    print(f"CUDA backend built: {_core.CUDA_BUILT}; GPUs usable now: {_core.cuda_device_count()}")
    print(f"CUDA available: {er.cuda_available()}")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    print(f"CPU threads available: {cores}")
    return 0


def _replay_info(path: str, as_json: bool) -> int:
    import json

    import escape_room_env as er

    try:
        meta = er.SimManager.read_replay_metadata(path)
    except er.ReplayFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    fields = {
        "path": meta.path,
        "num_worlds": meta.num_worlds,
        "num_agents": meta.num_agents,
        "num_steps": meta.num_steps,
        "complete": meta.complete,
        "seed": meta.seed,
        "autoreset_mode": meta.autoreset_mode.name,
        "episode_len": meta.episode_len,
        "rooms": list(meta.rooms),
        "levels": [level.name for level in meta.levels],
        "rules_version": meta.rules_version,
        "format_version": meta.format_version,
        "checksum_interval": meta.checksum_interval,
        "created": meta.created.isoformat(),
        "start": meta.start,
    }
    if as_json:
        print(json.dumps({**fields, "config": dict(meta.config)}, indent=2))
    else:
        width = max(len(k) for k in fields)
        for key, value in fields.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_render_level(ns: argparse.Namespace) -> int:
    import warnings

    from escape_room_env.levels import LevelWarning, compile_level, load_level
    from escape_room_env.render import level_picture, save_png

    try:
        level = load_level(ns.level)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LevelWarning)
            compiled = compile_level(level, num_agents=ns.num_agents)
    except (ValueError, OSError) as e:
        print(f"escape-room render-level: {e}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    out = ns.out or f"{level.name or 'level'}.png"
    save_png(level_picture(compiled, pixels_per_metre=ns.pixels_per_metre), out)
    print(
        f"{level.name or ns.level}: {compiled.rows} x {compiled.cols} cells of {level.cell_size:g} m, "
        f"{len(compiled.walls)} walls, {len(compiled.doors)} doors, {len(compiled.buttons)} buttons, "
        f"{len(compiled.cubes)} cubes, {compiled.num_spawns} spawns, {len(compiled.band_doors)} door rows -> {out}"
    )
    return 0


def _cmd_bench(ns: argparse.Namespace) -> int:
    from escape_room_env.bench import main as bench_main

    return bench_main(as_json=ns.json, peers=not ns.no_peers, worlds=ns.worlds, seconds=ns.seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="escape-room", description="escape_room_env command line")
    sub = parser.add_subparsers(dest="command", required=True)
    from escape_room_env.ppo import Args

    train_parser = sub.add_parser("train", help="train a PPO policy on the default level")
    _add_dataclass_flags(train_parser, Args)
    train_parser.add_argument(
        "--video",
        help="at the end, record the trained policy and render it to this .gif/.mp4 (needs the run saved)",
    )
    train_parser.set_defaults(func=_cmd_train)
    record = sub.add_parser("record", help="record a replay of a random or saved policy")
    record.add_argument("out", help="replay file to write (.bin)")
    record.add_argument("--steps", type=int, default=1000)
    record.add_argument("--num-worlds", type=int, default=16)
    record.add_argument("--num-agents", type=int, default=1)
    record.add_argument("--seed", type=int, default=0)
    record.add_argument("--episode-len", type=int, default=200)
    record.add_argument(
        "--autoreset-mode", default="same_step", choices=["same_step", "next_step", "disabled"]
    )
    record.add_argument("--checksum-interval", type=int, default=50)
    record.add_argument(
        "--level",
        action="append",
        help="a custom level (name or file) instead of the generated one; repeat for several",
    )
    record.add_argument("--policy", help="a policy.pt saved by `escape-room train` (default: random actions)")
    record.set_defaults(func=_cmd_record)
    replay = sub.add_parser("replay", help="replay a recording, verifying its state hashes")
    replay.add_argument("file")
    replay.add_argument("--verify", action="store_true", help="report the verified checkpoints")
    replay.add_argument("--video", help="write a video instead (.gif, or .mp4 with the `video` extra)")
    replay.add_argument("--world", type=int, default=0, help="the world the video shows")
    replay.add_argument("--first-person", action="store_true", help="add the agents' first-person images")
    replay.add_argument("--fps", type=float, default=10.0)
    replay.add_argument("--scale", type=float, default=8.0, help="pixels per metre of the top-down view")
    replay.add_argument("--max-steps", type=int, help="stop the video after this many steps")
    replay.set_defaults(func=_cmd_replay)
    info_parser = sub.add_parser("info", help="a replay file's metadata, or (no file) the build")
    info_parser.add_argument("file", nargs="?", help="replay file")
    info_parser.add_argument("--json", action="store_true", help="machine-readable output")
    info_parser.set_defaults(func=_cmd_info)
    render = sub.add_parser("render-level", help="a custom level's top-down picture (PNG)")
    render.add_argument("level", help="a shipped level's name (corridor, maze, cooperation) or a level file")
    render.add_argument("-o", "--out", help="PNG to write (default: <name>.png)")
    render.add_argument("--pixels-per-metre", type=float, default=8.0)
    render.add_argument("--num-agents", type=int, default=1, help="agents the level must have spawns for")
    render.set_defaults(func=_cmd_render_level)
    bench = sub.add_parser("bench", help="the quick core benchmark (full suite: benchmarks/bench_core.py)")
    bench.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    bench.add_argument("--no-peers", action="store_true", help="skip EnvPool CartPole even if installed")
    bench.add_argument(
        "--worlds", type=int, nargs="+", default=[1, 64, 1024, 4096], help="num_worlds to measure"
    )
    bench.add_argument("--seconds", type=float, default=0.2, help="seconds per timed repeat")
    bench.set_defaults(func=_cmd_bench)
    ns = parser.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
