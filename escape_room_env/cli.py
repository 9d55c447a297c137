"""The ``escape-room`` command line.

escape-room train [--num-envs 1024] [--total-timesteps ...] [--max-minutes 15] ...
escape-room info                      (build, CUDA, threads)
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
    return 0


def _cmd_info(ns: argparse.Namespace) -> int:
    import escape_room_env as er

    print(f"escape_room_env {er.__version__} (rules version {er.RULES_VERSION})")
    print(f"CUDA available: {er.cuda_available()}")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    print(f"CPU threads available: {cores}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="escape-room", description="escape_room_env command line")
    sub = parser.add_subparsers(dest="command", required=True)
    from escape_room_env.ppo import Args

    train_parser = sub.add_parser("train", help="train a PPO policy on the default level")
    _add_dataclass_flags(train_parser, Args)
    train_parser.set_defaults(func=_cmd_train)
    info_parser = sub.add_parser("info", help="show the build and the machine")
    info_parser.set_defaults(func=_cmd_info)
    ns = parser.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
