"""Hand a training run's serving candidate to the BentoML model store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from bookrecs.interactions import TrainData
from bookrecs.models import Recommender
from bookrecs.runs import unpack_directory
from bookrecs.serving_bundle import export_bundle
from bookrecs.split import Split


def register_candidate(
    name: str, weights: bytes, split: Split, *, run_id: str, metrics: pd.DataFrame
) -> tuple[str, bool]:
    """Export model `name` of run `run_id` as a serving bundle and save it in the store.

    Returns the stored tag and whether it was promoted (only when nothing serves yet).
    """
    from bentos import store

    data = TrainData.from_split(split)
    row = metrics.set_index("model").loc[name].to_dict()
    with tempfile.TemporaryDirectory(prefix="bookrecs-bundle-") as tmp:
        model = Recommender.load(unpack_directory(weights, Path(tmp) / "model"))
        bundle = export_bundle(
            Path(tmp) / "bundle", model, data, run_id=run_id, metrics={"model": name, **row}
        )
        tag = store.save_model(bundle, {"run_id": run_id, "model": name})

    if store.read_pointer().get("current") is None:
        store.promote(tag)
        return tag, True
    return tag, False
