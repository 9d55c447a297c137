"""The ``escape-room`` command line.

escape-room train [--num-envs 1024] [--total-timesteps ...] [--max-minutes 15] ...
escape-room info [FILE] [--json]      (a replay's metadata, or the build, CUDA, threads)
escape-room record OUT / replay FILE  (recordings, SPEC §5.2)
escape-room view FILE [--html OUT]    (a replay in the browser: served on 127.0.0.1, or one file)
escape-room render-level NAME|FILE    (a custom level's top-down picture, PNG)
escape-room bench                     (the quick core benchmark and its table)

Each command is a function with keyword parameters, whose defaults are the command line's;
the parser only collects them. ``main`` turns every error into one line on stderr,
``escape-room: error: <message>``, never a traceback (``escape-room --traceback ...`` shows
it, for a bug report). Exit status: 0 done; 1 the command failed (a replay that is corrupt or
does not verify, a file that cannot be read or written, the simulator); 2 an invalid argument
(argparse's own usage errors, and ``ValueError``/``TypeError``/``OverflowError`` from a value
or an input file); 130 interrupted (Ctrl-C), except ``view``, whose server Ctrl-C is the way
to stop: 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from escape_room_env.ppo_args import Args

PROG = "escape-room"


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
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)
    body = class_def.body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)  # a field,
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)  # then a string
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = str(following.value.value)
    return docs


def _train(args: Args, *, video: str | None = None) -> int:
    """``escape-room train``: trains with ``args`` (a ``ppo.Args``), then optionally films the policy."""
    from escape_room_env.ppo import train

    if video and not args.save_dir:
        raise ValueError("--video needs the run saved (a --save-dir)")
    result = train(args)
    if result.rank != 0:  # under torchrun rank 0 alone reports, saves and films
        return 0
    print(
        f"done: {result.global_step:,} steps in {result.seconds / 60:.1f} min, last {min(result.episodes, 1000)} "
        f"episodes: return {result.mean_return:+.3f}, progress {result.mean_progress:.2f} m, "
        f"first door {result.first_door_rate:.3f}, escape {result.escape_rate:.3f}"
    )
    if result.run_dir is not None:
        print(f"saved {result.run_dir / 'policy.pt'} and {result.run_dir / 'progress.csv'}")
    if video:
        return _policy_video(result.run_dir, video, num_agents=args.num_agents, seed=args.seed)
    return 0


def _policy_video(run_dir, video: str, *, num_agents: int, seed: int) -> int:
    """Records the trained policy for one episode (200 steps) in 4 worlds and renders world 0."""
    replay = run_dir / "policy_replay.bin"
    _record(
        str(replay), steps=200, num_worlds=4, num_agents=num_agents, seed=seed, episode_len=200,
        checksum_interval=50, policy=str(run_dir / "policy.pt"),
    )  # fmt: skip
    return _replay_video(str(replay), video, first_person=True)


def _record(
    out: str,
    *,
    steps: int = 1000,
    num_worlds: int = 16,
    num_agents: int = 1,
    seed: int = 0,
    episode_len: int = 200,
    autoreset_mode: str = "same_step",
    checksum_interval: int = 50,
    levels: list[str] | None = None,
    policy: str | None = None,
) -> int:
    """``escape-room record``: ``steps`` steps of random actions, or of a saved policy, to ``out``."""
    import numpy as np

    import escape_room_env as er

    if steps < 0:
        raise ValueError(f"--steps must be >= 0, got {steps}")
    agent = None
    if policy:  # before the simulator: a bad policy file costs nothing
        import torch

        from escape_room_env.ppo import load_agent

        agent = load_agent(policy)
    sim = er.SimManager(
        num_worlds=num_worlds,
        rand_seed=seed,
        num_agents=num_agents,
        autoreset_mode=autoreset_mode,
        episode_len=episode_len,
        levels=levels,
    )
    actions = sim.action_tensor().to_numpy()
    obs = sim.observation_tensor().to_numpy()
    if agent is not None and agent.obs_dim != obs.shape[-1]:
        raise ValueError(
            f"--policy {policy} takes observations of {agent.obs_dim} values, but with {num_agents} "
            f"agent(s) per world they have {obs.shape[-1]}: record with the --num-agents it was trained with"
        )
    rng = np.random.default_rng(seed)
    done = sim.done_tensor().to_numpy()
    episodes = escapes = 0
    with sim.recording(out, seed=seed, checksum_interval=checksum_interval):
        for _ in _steps(steps, "recording"):
            if agent is None:
                actions[:] = rng.integers(0, (4, 8, 5), size=actions.shape)
            else:
                with torch.no_grad():
                    flat = agent.act(torch.from_numpy(obs.reshape(-1, obs.shape[-1]).copy()))
                actions[:] = flat.numpy().reshape(actions.shape)
            sim.step()
            finished = done[:, 0, 0] == 1
            episodes += int(finished.sum())
            escapes += int((sim.termination_reason_tensor().to_numpy()[finished, 0, 0] == 1).sum())
    who = f"policy {policy}" if agent is not None else "random actions"
    print(
        f"recorded {steps} steps of {num_worlds} worlds ({who}) to {out}: "
        f"{episodes} episodes ended, {escapes} escaped"
    )
    return 0


def _replay(
    file: str, *, verify: bool = False, from_step: int = 0, video: str | None = None, **video_options
) -> int:
    """``escape-room replay``: plays ``file`` back from step ``from_step`` (reached by a verified
    seek), verifying its state hashes, or films it (``video_options``: those of
    :func:`_replay_video`, which need ``video``)."""
    import escape_room_env as er

    if video:
        return _replay_video(file, video, from_step=from_step, **video_options)
    if video_options:
        raise ValueError(f"--{next(iter(video_options)).replace('_', '-')} needs --video")
    sim = er.SimManager.from_replay(file)
    _, total = sim.get_replay_step_count()
    if not 0 <= from_step <= total:
        raise ValueError(f"--from-step {from_step} is outside the recording (0..{total})")
    sim.seek(from_step)
    done = sim.done_tensor().to_numpy()
    episodes = 0
    for _ in _steps(total - from_step, "replaying"):
        sim.replay_step()
        episodes += int((done[:, 0, 0] == 1).sum())
    meta = sim.read_replay_metadata(file)
    checkpoints = sim.get_replay_checkpoints_verified()
    what = f"steps {from_step + 1}..{total}" if from_step else f"{total} steps"
    print(f"replayed {what} of {meta.num_worlds} worlds: {episodes} episodes ended")
    if verify:
        print(
            f"verified: the state hashes of all {meta.num_worlds} worlds match at {checkpoints} checkpoints"
        )
    return 0


def _replay_video(
    file: str,
    video: str,
    *,
    world: int = 0,
    first_person: bool = False,
    max_steps: int | None = None,
    scale: float = 8.0,
    fps: float = 10.0,
    from_step: int = 0,
) -> int:
    """``escape-room replay FILE --video OUT``: world ``world`` of ``file``, verified as it plays."""
    from escape_room_env.render import replay_frames, write_video

    frames = replay_frames(
        file,
        world=world,
        first_person=first_person,
        max_steps=max_steps,
        pixels_per_metre=scale,
        from_step=from_step,
    )
    count = write_video(frames, video, fps=fps)
    print(f"wrote {count} frames of world {world} (every state hash verified on the way) to {video}")
    return 0


def _view(
    file: str,
    *,
    port: int | None = None,
    world: list[int] | None = None,
    browser: bool = True,
    html: str | None = None,
    first_person: bool = False,
    scale: float = 8.0,
    max_steps: int | None = None,
) -> int:
    """``escape-room view``: the replay viewer (``escape_room_env.viewer``), served on 127.0.0.1
    until Ctrl-C (exit 0), or with ``html`` written as one self-contained page."""
    from escape_room_env import viewer

    worlds = world or [0]
    if html is None:
        if max_steps is not None:
            raise ValueError("--max-steps needs --html (the server computes every step on demand)")
        if len(worlds) > 1:
            raise ValueError("--world once without --html: the page starts there and switches to any world")
        return viewer.serve(
            file,
            port=viewer.DEFAULT_PORT if port is None else port,
            world=worlds[0],
            open_browser=browser,
            first_person=first_person,
            pixels_per_metre=scale,
        )
    if port is not None:
        raise ValueError("--port needs the server: --html writes a file instead")
    written = viewer.write_html(
        file, html, worlds=worlds, first_person=first_person, pixels_per_metre=scale, max_steps=max_steps
    )
    shown = ", ".join(str(w) for w in written["worlds"])
    size = written["bytes"] / (1 << 20)
    print(f"wrote {html} ({size:.1f} MiB): steps 0..{written['steps']} of world(s) {shown}")
    if written["diverged"] is not None:
        message = written["diverged"]["message"]
        warnings.warn(f"the page stops at step {written['steps']}: {message}", UserWarning, stacklevel=2)
    return 0


def _steps(total: int, what: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return range(total)
    return tqdm(range(total), desc=what, unit="step", disable=total < 1000 or not sys.stderr.isatty())


def _info(file: str | None = None, *, as_json: bool = False) -> int:
    """``escape-room info``: a replay file's metadata, or (no file) the build, CUDA and threads."""
    import escape_room_env as er

    if file is not None:
        return _replay_info(file, as_json=as_json)
    print(f"escape_room_env {er.__version__} (rules version {er.RULES_VERSION})")
    from escape_room_env import _core

    print(f"CUDA backend built: {_core.CUDA_BUILT}; GPUs usable now: {_core.cuda_device_count()}")
    print(f"CUDA available: {er.cuda_available()}")
    cores: int | None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    print(f"CPU threads available: {cores}")
    return 0


def _replay_info(path: str, *, as_json: bool) -> int:
    import json

    import escape_room_env as er

    meta = er.SimManager.read_replay_metadata(path)
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


def _render_level(
    level: str, *, out: str | None = None, pixels_per_metre: float = 8.0, num_agents: int = 1
) -> int:
    """``escape-room render-level``: the top-down picture of a shipped level or a level file."""
    from escape_room_env.levels import LevelWarning, compile_level, load_level
    from escape_room_env.render import level_picture, save_png

    loaded = load_level(level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LevelWarning)
        compiled = compile_level(loaded, num_agents=num_agents)
    for w in caught:
        _show_warning(w.message, w.category, w.filename, w.lineno)
    out = out or f"{loaded.name or 'level'}.png"
    save_png(level_picture(compiled, pixels_per_metre=pixels_per_metre), out)
    print(
        f"{loaded.name or level}: {compiled.rows} x {compiled.cols} cells of {loaded.cell_size:g} m, "
        f"{len(compiled.walls)} walls, {len(compiled.doors)} doors, {len(compiled.buttons)} buttons, "
        f"{len(compiled.cubes)} cubes, {compiled.num_spawns} spawns, {len(compiled.band_doors)} door rows -> {out}"
    )
    return 0


def _bench(**options) -> int:
    """``escape-room bench``: ``escape_room_env.bench.main`` (imported only when asked for)."""
    from escape_room_env.bench import main as bench_main

    return bench_main(**options)


def _add_train(sub) -> None:
    """``train``: one flag per ``ppo.Args`` field (from the torch-free ``ppo_args``, so that no
    command imports PyTorch to build the parser). Without PyTorch, ``train`` says it needs it and
    every other command still works."""
    from escape_room_env.ppo_args import Args

    parser = sub.add_parser("train", help="train a PPO policy on the default level")
    _add_dataclass_flags(parser, Args)
    parser.add_argument(
        "--video",
        help="at the end, record the trained policy and render it to this .gif/.mp4 (needs the run saved)",
    )
    fields = [f.name for f in dataclasses.fields(Args)]

    def run(video: str | None = None, **flags) -> int:
        return _train(Args(**{name: flags[name] for name in fields}), video=video)

    parser.set_defaults(func=run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="escape_room_env command line")
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, show the full traceback (for a bug report)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        # Options left out stay out of the namespace, so the defaults are func's own.
        cmd = sub.add_parser(name, help=help, argument_default=argparse.SUPPRESS)
        cmd.set_defaults(func=func)
        return cmd

    record = command("record", _record, "record a replay of a random or saved policy")
    record.add_argument("out", help="replay file to write (.bin)")
    record.add_argument("--steps", type=int)
    record.add_argument("--num-worlds", type=int)
    record.add_argument("--num-agents", type=int)
    record.add_argument("--seed", type=int)
    record.add_argument("--episode-len", type=int)
    record.add_argument("--autoreset-mode", choices=["same_step", "next_step", "disabled"])
    record.add_argument("--checksum-interval", type=int)
    record.add_argument(
        "--level",
        dest="levels",
        action="append",
        help="a custom level (name or file) instead of the generated one; repeat for several",
    )
    record.add_argument("--policy", help="a policy.pt saved by `escape-room train` (default: random actions)")
    replay = command("replay", _replay, "replay a recording, verifying its state hashes")
    replay.add_argument("file")
    replay.add_argument("--verify", action="store_true", help="report the verified checkpoints")
    replay.add_argument(
        "--from-step", type=int, help="start after this recorded step (a verified seek); the video too"
    )
    replay.add_argument("--video", help="write a video instead (.gif, or .mp4 with the `video` extra)")
    replay.add_argument("--world", type=int, help="the world the video shows")
    replay.add_argument("--first-person", action="store_true", help="add the agents' first-person images")
    replay.add_argument("--fps", type=float)
    replay.add_argument("--scale", type=float, help="pixels per metre of the top-down view")
    replay.add_argument("--max-steps", type=int, help="stop the video after this many steps")
    view = command("view", _view, "a replay in the browser: served on 127.0.0.1 (Ctrl-C stops it), or --html")
    view.add_argument("file", help="replay file (.bin)")
    view.add_argument("--port", type=int, help="port on 127.0.0.1 (default: 8765; 0 picks a free one)")
    view.add_argument(
        "--world", type=int, action="append", help="the world shown first (--html: repeat for several)"
    )
    view.add_argument("--no-browser", dest="browser", action="store_false", help="do not open a browser")
    view.add_argument("--html", help="write one self-contained page here instead of serving")
    view.add_argument("--first-person", action="store_true", help="add the agents' first-person images")
    view.add_argument("--scale", type=float, help="pixels per metre of the top-down view (default: 8)")
    view.add_argument("--max-steps", type=int, help="with --html: hold steps 0..N only")
    info = command("info", _info, "a replay file's metadata, or (no file) the build")
    info.add_argument("file", nargs="?", help="replay file")
    info.add_argument("--json", dest="as_json", action="store_true", help="machine-readable output")
    render = command("render-level", _render_level, "a custom level's top-down picture (PNG)")
    render.add_argument("level", help="a shipped level's name (corridor, maze, cooperation) or a level file")
    render.add_argument("-o", "--out", help="PNG to write (default: <name>.png)")
    render.add_argument("--pixels-per-metre", type=float)
    render.add_argument("--num-agents", type=int, help="agents the level must have spawns for")
    bench = command("bench", _bench, "the quick core benchmark (full suite: benchmarks/bench_core.py)")
    bench.add_argument("--json", dest="as_json", action="store_true", help="JSON lines instead of the table")
    bench.add_argument(
        "--no-peers", dest="peers", action="store_false", help="skip EnvPool CartPole even if installed"
    )
    bench.add_argument(
        "--worlds", type=int, nargs="+", help="num_worlds to measure (default: 1 64 1024 4096)"
    )
    bench.add_argument("--seconds", type=float, help="seconds per timed repeat (default: 0.2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; every error ends as one line on stderr and an exit status (module docstring)."""
    parser = _parser()
    ns, unknown = parser.parse_known_args(argv)
    options = vars(ns)
    if unknown and not options.pop("any_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    func, show_traceback = options.pop("func"), options.pop("traceback")
    options.pop("command")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return func(**options)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read stdout has gone (`escape-room info --json x | head -1`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush of stdout fails quietly
        return 1
    except Exception as error:
        if show_traceback:
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, (ValueError, TypeError, OverflowError)) else 1


def _one_line(error: BaseException) -> str:
    """An exception as one line: an OSError as ``path: reason``, the lines of other messages
    joined, and the class name first unless it is one of the plain argument errors."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{os.fsdecode(error.filename)}: {error.strerror}"
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if message and isinstance(error, (ValueError, TypeError, OverflowError, OSError, ImportError)):
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, like errors: ``escape-room: warning: <Category>: <message>``."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"{PROG}: warning: {category.__name__}: {text}", file=sys.stderr if file is None else file)


if __name__ == "__main__":
    sys.exit(main())
