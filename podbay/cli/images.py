"""`podbay image ...`: this machine's image store (the node's, under the state root), as
`crictl images` / `podman image` work on theirs. Runs locally; needs no server."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from podbay.cli.common import table
from podbay.cli.progress import PullProgress, human_size, terminal_columns
from podbay.cli.settings import settings_from
from podbay.runtime.config import prepare_roots
from podbay.runtime.images import ImageConfig, ImageLimits, ImageStore, import_archive, pull


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", help="list, pull, import, build and remove images on this machine")
    verbs = image.add_subparsers(dest="image_verb", metavar="VERB", required=True)
    verbs.add_parser("ls", help="list images").set_defaults(func=cmd_ls)
    p = verbs.add_parser("pull", help="pull from a registry (anonymous, token, or --auth-file)")
    p.add_argument("ref")
    p.add_argument("--auth-file", type=Path)
    p.set_defaults(func=cmd_pull)
    p = verbs.add_parser("import", aliases=["load"],
                         help="import an OCI layout (dir or tar) or a docker/podman save archive")
    p.add_argument("path", type=Path)
    p.set_defaults(func=cmd_import)
    p = verbs.add_parser("build", help="a single-layer image from a directory or rootfs tarball")
    p.add_argument("source", type=Path)
    p.add_argument("-t", "--tag", required=True)
    p.add_argument("--cmd", nargs="*", default=["sh"])
    p.add_argument("--entrypoint", nargs="*", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default="")
    p.add_argument("--user", default="")
    p.set_defaults(func=cmd_build)
    p = verbs.add_parser("rm", help="remove images (layers go when nothing else uses them)")
    p.add_argument("refs", nargs="+")
    p.set_defaults(func=cmd_rm)


def _store(args: argparse.Namespace) -> ImageStore:
    config = settings_from(args).runtime_config()
    prepare_roots(config)
    return ImageStore(config.images_root, ImageLimits(config.max_image_size, config.imagefs_min_available))


def cmd_ls(args: argparse.Namespace) -> int:
    rows = [["IMAGE", "TAG", "IMAGE ID", "SIZE"]]
    for image in sorted(_store(args).list_images(), key=lambda i: i.repo_tags):
        for tag in image.repo_tags or ["<none>:<none>"]:
            repo, _, version = tag.rpartition(":")
            rows.append([repo, version, image.id.removeprefix("sha256:")[:13], human_size(image.size)])
    print(table(rows))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    progress = PullProgress(sys.stderr, sys.stderr.isatty(), columns=terminal_columns(sys.stderr))
    try:
        image = asyncio.run(pull(_store(args), args.ref, progress=progress, auth_file=args.auth_file))
    except Exception as exc:
        progress.finish(ok=False)
        print(f"error: pulling {args.ref}: {exc}", file=sys.stderr)
        return 1
    progress.finish()
    print(image.id)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        images = import_archive(_store(args), args.path)
    except Exception as exc:
        print(f"error: importing {args.path}: {exc}", file=sys.stderr)
        return 1
    for image in images:
        print(f"{image.id} {' '.join(image.repo_tags)}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    config = ImageConfig(entrypoint=args.entrypoint, cmd=args.cmd, env=args.env, working_dir=args.workdir,
                         user=args.user)
    try:
        image = _store(args).build(args.source, tag=args.tag, config=config)
    except Exception as exc:
        print(f"error: building {args.tag}: {exc}", file=sys.stderr)
        return 1
    print(image.id)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    store, failed = _store(args), False
    for ref in args.refs:
        try:
            store.remove_image(ref)
            print(f"Untagged: {ref}")
        except Exception as exc:
            print(f"error: {ref}: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0
