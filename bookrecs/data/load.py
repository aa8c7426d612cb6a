"""Pick the reader for a training config and return its `Dataset`."""

from __future__ import annotations

import logging
from pathlib import Path

from bookrecs.config import DemoConfig, TrainConfig
from bookrecs.data.custom import read_custom
from bookrecs.data.dataset import Dataset
from bookrecs.data.goodreads import read_goodreads
from bookrecs.data.prepared import read_prepared
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.data")

DEFAULT_DEMO_ROOT = Path("data/demo")
DEMO_NAME = "demo (synthetic)"

READERS = {"goodreads": read_goodreads, "prepared": read_prepared, "custom": read_custom}


def load_dataset(config: TrainConfig, cache_dir: Path | None = None) -> Dataset:
    """Read the dataset that `config.dataset` names.

    Parameters
    ----------
    config
        Training config: `dataset` selects the reader and `data_dir` its folder. For "demo",
        `demo` and `seed` set the generated data.
    cache_dir
        Root folder of generated demo data; default `config.data_dir` when set, else
        `data/demo` under the working directory. Ignored for the other datasets.

    Returns
    -------
    Dataset
        For "demo", the generated UCSD-format files read by `read_goodreads`, with
        `synthetic=True` and name "demo (synthetic)".

    Raises
    ------
    DataError
        `data_dir` does not exist, or the reader rejects its files.
    """
    if config.dataset == "demo":
        return load_demo(config, cache_dir)

    data_dir = Path(config.data_dir or "")
    if not data_dir.is_dir():
        raise DataError(
            f"data_dir {data_dir} for dataset={config.dataset!r} does not exist: "
            "pass --data-dir pointing at the folder with its files"
        )
    logger.info("reading dataset %r from %s", config.dataset, data_dir)
    return READERS[config.dataset](data_dir, show_progress=config.show_progress)


def load_demo(config: TrainConfig, cache_dir: Path | None = None) -> Dataset:
    """Generate the demo files when absent or stale, then read them as Goodreads files."""
    from bookrecs.data.demo import write_demo

    root = Path(cache_dir) if cache_dir else Path(config.data_dir or DEFAULT_DEMO_ROOT)
    dest = root / demo_folder_name(config.demo, config.seed)
    write_demo(dest, config.demo, config.seed, show_progress=config.show_progress)
    dataset = read_goodreads(dest, show_progress=config.show_progress)
    dataset.name = DEMO_NAME
    dataset.synthetic = True
    return dataset


def demo_folder_name(demo: DemoConfig, seed: int) -> str:
    """Name the folder of one demo configuration, such as `small-seed42`.

    User and book overrides are appended (`small-seed42-u500-b300`) so that each
    configuration keeps its own files.
    """
    name = f"{demo.size}-seed{seed}"
    if demo.n_users is not None:
        name += f"-u{demo.n_users}"
    if demo.n_books is not None:
        name += f"-b{demo.n_books}"
    return name
