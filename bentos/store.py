"""Model store for serving bundles: save, list, promote and roll back versions.

Bundles (see `bookrecs.serving_bundle`) are saved into the BentoML model store under the name
`bookrecs`, one version per training run, labelled with the run id. Which version serves is
kept in a small JSON "serving pointer" next to the store:

    {"current": "bookrecs:<version>", "previous": "bookrecs:<version>" | null,
     "history": [...promoted tags, oldest first...], "paths": {tag: bundle folder},
     "updated_at": ISO-8601 UTC, "action": "promote" | "rollback"}

`promote` appends a tag to the history, `rollback` drops the last one, so `current` is the
last entry and `previous` the one before it. The file is replaced atomically under a lock,
and the running service polls its modification time, loads the new current version fully and
only then swaps it in.

Command line::

    python -m bentos.store save BUNDLE_DIR
    python -m bentos.store list
    python -m bentos.store promote --run RUN_ID   (or --tag bookrecs:VERSION)
    python -m bentos.store rollback
    python -m bentos.store show
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bookrecs.exceptions import BookRecsError, ModelLoadError
from bookrecs.serving_bundle import BUNDLE_FILE, load_bundle

logger = logging.getLogger("bookrecs.store")

MODEL_NAME = "bookrecs"
POINTER_ENV = "BOOKRECS_SERVING_POINTER"
POINTER_FILE = "bookrecs-serving.json"


class StoreError(BookRecsError):
    """A model store or serving pointer operation cannot be done."""


def bentoml_home() -> Path:
    """Return the BentoML home folder: $BENTOML_HOME or ~/bentoml (BentoML's default)."""
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


def pointer_path(path: str | Path | None = None) -> Path:
    """Return the serving pointer file: `path`, else $BOOKRECS_SERVING_POINTER, else
    `<BentoML home>/bookrecs-serving.json`."""
    if path:
        return Path(path)
    if os.environ.get(POINTER_ENV):
        return Path(os.environ[POINTER_ENV])
    return bentoml_home() / POINTER_FILE


def save_model(bundle_dir: str | Path, metadata: dict[str, Any]) -> str:
    """Copy a serving bundle into the BentoML model store and return its tag.

    The bundle is loaded first, so a corrupt bundle never enters the store. The store keeps
    every saved version; saving does not change which version serves (use `promote`).

    Parameters
    ----------
    bundle_dir
        Folder written by `bookrecs.serving_bundle.export_bundle`.
    metadata
        Extra metadata (JSON-serialisable), e.g. {"run_id": ..., "metrics": {...}}. The run
        id and metrics of the bundle itself are added when missing.

    Returns
    -------
    str
        Tag `bookrecs:<version>`.
    """
    import bentoml

    bundle_dir = Path(bundle_dir)
    bundle = load_bundle(bundle_dir)
    meta = {
        "run_id": bundle.run_id,
        "model": bundle.meta.get("model"),
        "metrics": bundle.meta.get("metrics", {}),
        "bundle_created_at": bundle.meta.get("created_at"),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    meta.update(metadata)
    meta = json.loads(json.dumps(meta, default=str))
    labels = {"run_id": str(meta["run_id"]), "model": str(meta.get("model"))}

    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=meta) as stored:
        shutil.copytree(bundle_dir, stored.path, dirs_exist_ok=True)
    tag = str(stored.tag)
    logger.info("saved bundle %s (run %s) as %s", bundle_dir, labels["run_id"], tag)
    return tag


def list_models() -> list[dict[str, Any]]:
    """Return the stored versions, newest first: tag, run id, model, creation time, path."""
    import bentoml

    rows = []
    for stored in bentoml.models.list(MODEL_NAME):
        rows.append(
            {
                "tag": str(stored.tag),
                "run_id": stored.info.labels.get("run_id", ""),
                "model": stored.info.labels.get("model", ""),
                "created_at": stored.info.creation_time.isoformat(timespec="seconds"),
                "metrics": stored.info.metadata.get("metrics", {}),
                "path": stored.path,
            }
        )
    return sorted(rows, key=lambda row: row["created_at"], reverse=True)


def find_tag(run_id: str) -> str:
    """Return the newest stored tag whose `run_id` label is `run_id`."""
    rows = list_models()
    for row in rows:
        if row["run_id"] == run_id:
            return row["tag"]
    known = ", ".join(sorted({row["run_id"] for row in rows})) or "none"
    raise StoreError(
        f"no stored model has run id {run_id!r} (stored run ids: {known}); "
        "save the run's bundle with `python -m bentos.store save BUNDLE_DIR` first"
    )


def resolve_tag(tag: str) -> str:
    """Return the concrete stored tag `bookrecs:<version>` that `tag` names.

    `tag` may omit the model name (`<version>`), use upper case, or use an alias such as
    `latest`; the result is always the tag of one stored version.

    Raises
    ------
    StoreError
        When `tag` is not a valid BentoML tag, names another model, or is not stored.
    """
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    taglike = tag if ":" in tag else f"{MODEL_NAME}:{tag}"
    try:
        parsed = bentoml.Tag.from_taglike(taglike)
    except (ValueError, BentoMLException) as error:
        raise StoreError(
            f"invalid model tag {tag!r} ({error}): use bookrecs:<version> as printed by "
            "`python -m bentos.store list`"
        ) from None
    if parsed.name != MODEL_NAME:
        raise StoreError(
            f"model tag {tag!r} names model {parsed.name!r}, expected {MODEL_NAME!r}: "
            "use bookrecs:<version> as printed by `python -m bentos.store list`"
        )
    try:
        return str(bentoml.models.get(parsed).tag)
    except NotFound:
        raise StoreError(
            f"model {tag!r} is not in the store at {bentoml_home()}: "
            "run `python -m bentos.store list` to see stored versions"
        ) from None


def model_path(tag: str) -> Path:
    """Return the bundle folder of stored version `tag`."""
    import bentoml

    return Path(bentoml.models.get(resolve_tag(tag)).path)


def read_pointer(path: str | Path | None = None) -> dict[str, Any]:
    """Return the serving pointer, or an empty pointer when none was written yet."""
    path = pointer_path(path)
    try:
        pointer = json.loads(path.read_text())
    except FileNotFoundError:
        return {"current": None, "previous": None, "history": [], "paths": {}}
    except (OSError, ValueError) as error:
        raise StoreError(
            f"serving pointer {path} is unreadable ({error}): fix or delete it"
        ) from None
    pointer.setdefault("history", [])
    pointer.setdefault("paths", {})
    return pointer


def promote(
    tag: str | None = None, *, run_id: str | None = None, pointer: str | Path | None = None
) -> dict[str, Any]:
    """Make `tag` (or the newest version of `run_id`) the serving version.

    The bundle is loaded before the pointer changes, so a corrupt version is never promoted.
    An alias such as `bookrecs:latest` is resolved, so the pointer always names one stored
    version. Returns the new pointer.

    Raises
    ------
    StoreError
        When the tag is invalid or not stored, the bundle does not load, or the version is
        already the current one.
    """
    if (tag is None) == (run_id is None):
        raise StoreError("pass exactly one of --tag or --run")
    tag = resolve_tag(tag if tag is not None else find_tag(str(run_id)))
    path = model_path(tag)
    try:
        load_bundle(path, version=tag)
    except ModelLoadError as error:
        raise StoreError(f"not promoting {tag}: {error}") from None

    with _locked(pointer) as state:
        before = state.get("current")
        if before == tag:
            raise StoreError(
                f"{tag} is already the current version, so the pointer is unchanged: "
                "promote another version, or use `rollback` to serve the previous one"
            )
        state["history"].append(tag)
        state["paths"][tag] = str(path)
        _set_heads(state, "promote")
    logger.info("promoted %s (previous: %s)", tag, before)
    return state


def rollback(pointer: str | Path | None = None) -> dict[str, Any]:
    """Serve the previous version again; return the new pointer."""
    with _locked(pointer) as state:
        if len(state["history"]) < 2:
            raise StoreError(
                f"nothing to roll back to: the pointer {pointer_path(pointer)} has "
                f"{len(state['history'])} promoted version(s); promote another version instead"
            )
        left = state["history"].pop()
        _set_heads(state, "rollback")
    logger.info("rolled back from %s to %s", left, state["current"])
    return state


def _set_heads(state: dict[str, Any], action: str) -> None:
    history = state["history"]
    state["current"] = history[-1] if history else None
    state["previous"] = history[-2] if len(history) > 1 else None
    state["updated_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    state["action"] = action


@contextmanager
def _locked(pointer: str | Path | None) -> Iterator[dict[str, Any]]:
    """Read-modify-write the pointer under an exclusive lock, replacing the file atomically."""
    path = pointer_path(pointer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_pointer(path)
        yield state
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bentos.store", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--pointer",
        help=f"serving pointer file (default ${POINTER_ENV} or <BENTOML_HOME>/{POINTER_FILE})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    save = commands.add_parser("save", help="copy a serving bundle into the model store")
    save.add_argument("bundle_dir", type=Path, help=f"folder holding {BUNDLE_FILE}")
    save.add_argument("--promote", action="store_true", help="also make it the serving version")
    commands.add_parser("list", help="list stored versions, newest first")
    up = commands.add_parser("promote", help="make a stored version the serving version")
    target = up.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", dest="run_id", help="training run id (newest version of it)")
    target.add_argument("--tag", help="model store tag, e.g. bookrecs:abc123")
    commands.add_parser("rollback", help="serve the previous version again")
    commands.add_parser("show", help="print the serving pointer")
    args = parser.parse_args(argv)
    from bentoml.exceptions import BentoMLException

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.command == "save":
            tag = save_model(args.bundle_dir, {})
            print(tag)
            if args.promote:
                promote(tag, pointer=args.pointer)
        elif args.command == "list":
            for row in list_models():
                print(f"{row['tag']}\trun={row['run_id']}\t{row['model']}\t{row['created_at']}")
        elif args.command == "promote":
            state = promote(args.tag, run_id=args.run_id, pointer=args.pointer)
            print(f"current={state['current']} previous={state['previous']}")
        elif args.command == "rollback":
            state = rollback(args.pointer)
            print(f"current={state['current']} previous={state['previous']}")
        else:
            print(json.dumps(read_pointer(args.pointer), indent=2, sort_keys=True))
    except (BookRecsError, OSError, BentoMLException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
