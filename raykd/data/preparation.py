"""One data preparation per pipeline: the first stage reads and splits the data (`prepare_dataset`) and records
what it prepared (`record`); later stages `reuse` the record instead of splitting again.

The record sits in the teacher's output folder:

    prepared.json     the data config, the dataset's digest, the stage and folder that prepared it
    splits.parquet    id, task, split and text_sha256 of every response (never the text: children's data
                      stays in the data folder, and stages read it from there)

A later stage (distill, tune) reads the raw files again for the texts, keeps exactly the recorded responses
(of all recorded tasks, or of some of them) with their recorded splits, and checks every text, and the
digest when all tasks are used, against the record. Anything else (other
data, other responses, a changed text, a different split asked for) is an error naming the stage that
prepared the data: stages never re-split on their own, so they agree by construction, not by seed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raykd.config import from_dict
from raykd.data import detect_format, load_dataset, make_splits, resolve_data_path
from raykd.data.config import DataConfig
from raykd.data.dataset import ScoringDataset
from raykd.errors import DataError
from raykd.io import atomic_path, write_text_atomic

PREPARED = "prepared.json"
SPLITS = "splits.parquet"
MODEL_DATA = "data.json"  # in a model folder: the PreparedData it learnt from
# A later stage may read the data from another place (a cluster's mount) but must not ask for another split.
SPLIT_KEYS = ("validation", "test", "seed", "limit_per_task", "corrections")


def load_unsplit(cfg: DataConfig, corrected: bool = True) -> ScoringDataset:
    """The responses `cfg` names, with the splits their source defines (ASAP-SAS test, SemEval test), and people's
    corrections (`cfg.corrections`) applied unless `corrected` is False."""
    options = dict(cfg.options)
    fmt = cfg.format if cfg.format != "auto" else detect_format(resolve_data_path(cfg.path))
    # corrections may score responses that were unscored: read those too, and keep only the corrected ones
    if fmt == "asap" and (cfg.include_unlabelled or cfg.corrections):
        options["include_unlabelled"] = True
    ds = load_dataset(cfg.path, cfg.format, cfg.skip_invalid, **options)
    return with_corrections(ds, cfg) if corrected else ds


def with_corrections(ds: ScoringDataset, cfg: DataConfig) -> ScoringDataset:
    """`ds` with the corrections version `cfg.corrections` applied (raykd.feedback), and without the unscored
    responses left unless `cfg.include_unlabelled` (a generic file may hold them: split `unlabelled`)."""
    if cfg.corrections:
        from raykd.feedback import apply_corrections

        ds = apply_corrections(ds, cfg.corrections)
    if not cfg.include_unlabelled and (ds.frame["split"] == "unlabelled").any():
        ds = ds.subset(ds.frame["split"] != "unlabelled")
    return ds


def prepare_dataset(cfg: DataConfig) -> ScoringDataset:
    """Read, split (seeded, stratified), apply corrections and, for small runs, keep the first `limit_per_task`
    rows per task and split. The split is drawn before corrections so that a new corrections version leaves
    every other response where it was (a corrected unscored response joins train)."""
    ds = make_splits(load_unsplit(cfg, corrected=False), cfg.validation, cfg.test, cfg.seed)
    ds = with_corrections(ds, cfg)
    if cfg.limit_per_task:
        frame = ds.frame.groupby(["task", "split"], group_keys=False, sort=False).head(cfg.limit_per_task)
        ds = ds.subset(ds.frame.index.isin(frame.index) | ds.frame["id"].astype(str).isin(corrected_ids(cfg)))
    return ds


def human_agreement(cfg: DataConfig, ids: list[str]) -> dict[str, float]:
    """Per task, how two human raters agree on the responses `ids` where the data has a second rater (ASAP-SAS
    Score2); {} for data without one."""
    root = resolve_data_path(cfg.path)
    if not root.is_dir():  # a stage may run where only the prepared splits are (a cluster's other mount)
        return {}
    fmt = cfg.format if cfg.format != "auto" else detect_format(root)
    if fmt != "asap":
        return {}
    from raykd.data.asap import second_rater_agreement

    return second_rater_agreement(root, ids)


def corrected_ids(cfg: DataConfig) -> set[str]:
    """The responses `cfg.corrections` scores (kept by `limit_per_task`: a correction is never cut)."""
    if not cfg.corrections:
        return set()
    from raykd.feedback import load_version

    return set(load_version(cfg.corrections)[1]["id"].astype(str))


@dataclass
class PreparedData:
    """What a stage prepared: its data config, the dataset digest, and where the record lives."""

    stage: str
    folder: str
    digest: str
    responses: int
    data: DataConfig


def text_digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_digests(texts: pd.Series) -> np.ndarray:
    return np.array([text_digest(t) for t in texts], dtype=object)


def record(ds: ScoringDataset, data: DataConfig, folder: str | Path, stage: str, digest: str | None = None
           ) -> PreparedData:
    """Write the record of `ds` (prepared from `data`; `digest`: its digest, when the stage has it) into `folder`."""
    folder = Path(folder)
    frame = ds.frame
    splits = pd.DataFrame({"id": frame["id"].astype(str).to_numpy(dtype=object),
                           "task": frame["task"].to_numpy(dtype=object),
                           "split": frame["split"].to_numpy(dtype=object),
                           "text_sha256": text_digests(frame["text"])})
    with atomic_path(folder / SPLITS) as tmp:
        splits.to_parquet(tmp, index=False)
    prepared = PreparedData(stage=stage, folder=str(folder), digest=digest or ds.digest(), responses=len(frame),
                            data=data)
    write_text_atomic(folder / PREPARED, json.dumps(dataclasses.asdict(prepared), indent=2))
    return prepared


def write_model_data(model_dir: str | Path, prepared: PreparedData) -> Path:
    """Record in a model folder which data it learnt from (`raykd feedback` checks corrections against it)."""
    path = Path(model_dir) / MODEL_DATA
    write_text_atomic(path, json.dumps(dataclasses.asdict(prepared), indent=2))
    return path


def model_data(model_dir: str | Path) -> PreparedData:
    """The data a model folder learnt from (`write_model_data`)."""
    path = Path(model_dir) / MODEL_DATA
    if not path.is_file():
        raise DataError(str(model_dir), f"this model does not record the data it learnt from ({MODEL_DATA} is "
                                        "missing; models saved by the teacher, distill and tune stages have it)")
    return _prepared(path)


def _prepared(path: Path) -> PreparedData:
    raw = json.loads(path.read_text())
    return PreparedData(stage=raw["stage"], folder=raw["folder"], digest=raw["digest"], responses=raw["responses"],
                        data=from_dict(DataConfig, raw["data"], str(path)))


def load_record(folder: str | Path) -> PreparedData:
    path = Path(folder) / PREPARED
    if not path.is_file() or not (Path(folder) / SPLITS).is_file():
        raise DataError(str(folder), f"no prepared data here ({PREPARED} and {SPLITS} are written by the teacher "
                                     "stage; rerun it, or point the stage at a teacher's output folder)")
    return _prepared(path)


def reuse(folder: str | Path, data: DataConfig | None, stage: str) -> ScoringDataset:
    """The dataset recorded in `folder`, for `stage`: read with `data` (default: the recorded config), split as
    recorded, and checked against the record."""
    rec = load_record(folder)
    where = f"the {rec.stage} stage at {rec.folder}"
    data = data or rec.data
    for key in SPLIT_KEYS:
        if getattr(data, key) != getattr(rec.data, key):
            raise DataError(f"{stage} config", f"data.{key} is {getattr(data, key)!r} but {where} prepared the data "
                                               f"with {getattr(rec.data, key)!r}; leave data out of the {stage} "
                                               "config to use the recorded preparation")
    splits = pd.read_parquet(Path(folder) / SPLITS).set_index("id")
    ds = load_unsplit(data)
    frame = ds.frame
    extra = sorted(set(frame["task"]) - set(splits["task"]))
    if extra:
        raise DataError(str(data.path), f"task(s) {extra} were not prepared by {where} (it has "
                                        f"{sorted(set(splits['task']))})")
    # A stage may use some of the recorded tasks (a per-set search on a multi-set teacher), never a part of one.
    whole = splits["task"].isin(set(frame["task"]))
    subset = not whole.all()
    splits = splits[whole]
    known = frame["id"].astype(str).isin(splits.index).to_numpy()
    missing = splits.index.difference(frame["id"].astype(str))
    if len(missing):
        raise DataError(str(data.path), f"{len(missing)} response(s) that {where} prepared are not in this data, "
                                        f"e.g. {list(missing[:3])}: it is not the same dataset")
    frame = frame[known].copy()
    rows = splits.loc[frame["id"].astype(str)]
    if (rows["task"].to_numpy() != frame["task"].to_numpy()).any():
        raise DataError(str(data.path), f"responses belong to other tasks than in {where}")
    frame["text_sha256"] = text_digests(frame["text"])  # hashed once here; later checks of this stage reuse them
    changed = frame["text_sha256"].to_numpy() != rows["text_sha256"].to_numpy()
    if changed.any():
        rid = frame["id"].iloc[int(np.flatnonzero(changed)[0])]
        raise DataError(str(data.path), f"response {rid!r}: its text differs from the one {where} prepared")
    frame["split"] = rows["split"].to_numpy()
    order = {rid: i for i, rid in enumerate(splits.index)}
    frame = frame.sort_values("id", key=lambda s: s.astype(str).map(order)).reset_index(drop=True)
    out = ScoringDataset(ds.name, {t: s for t, s in ds.tasks.items() if t in set(frame["task"])}, frame,
                         list(ds.problems))
    digest = "" if subset else out.digest()
    if not subset and digest != rec.digest:
        raise DataError(str(data.path), f"the dataset's digest {digest[:16]} differs from the "
                                        f"{rec.digest[:16]} that {where} recorded")
    return out
