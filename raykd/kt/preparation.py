"""One data preparation per knowledge-tracing pipeline: the teacher stage reads and splits the data once and
records it (`kt_prepared.json`); later stages call `reuse`, which refuses data that has changed since."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from raykd.errors import DataError
from raykd.io import write_text_atomic
from raykd.kt.config import KTDataConfig
from raykd.kt.data import KTDataset, Sequence, load_kt_folder, split_learners, windows
from raykd.kt.models import KTIndex

FILE = "kt_prepared.json"


@dataclass
class KTPrepared:
    source: str  # the folder read
    digest: str
    skill_ids: list[int]  # model skill index i + 1 is skill_ids[i]
    train_learners: list[int]  # indices into the train file's sequences
    validation_learners: list[int]
    max_length: int
    item_skill: list[tuple[int, int]] = field(default_factory=list)  # (item id, skill id); empty: ids are skills

    @property
    def index(self) -> KTIndex:
        return KTIndex.of(self.skill_ids, dict(self.item_skill))

    def windows(self, ds: KTDataset) -> dict[str, list[Sequence]]:
        """Each split's sequences cut to model-sized windows, in a fixed order."""
        return {"train": windows([ds.train[i] for i in self.train_learners], self.max_length),
                "validation": windows([ds.train[i] for i in self.validation_learners], self.max_length),
                "test": windows(ds.test, self.max_length)}


def read(cfg: KTDataConfig) -> KTDataset:
    ds = load_kt_folder(cfg.path, cfg.train_file, cfg.test_file, cfg.skill_names, cfg.skip_invalid,
                        cfg.item_skills, cfg.item_names)
    if cfg.limit is not None:
        ds.train, ds.test = ds.train[:cfg.limit], ds.test[:cfg.limit]
    return ds


def prepare(cfg: KTDataConfig) -> tuple[KTDataset, KTPrepared]:
    ds = read(cfg)
    train, val = split_learners(len(ds.train), cfg.validation, cfg.seed)
    if len(train) == 0 or len(val) == 0:
        raise DataError(ds.name, f"{len(ds.train)} training sequences cannot be split into train and validation")
    return ds, KTPrepared(str(cfg.path), ds.digest(), ds.skill_ids, train.tolist(), val.tolist(), cfg.max_length,
                          sorted(ds.item_skill.items()))


def record(prepared: KTPrepared, folder: str | Path) -> None:
    write_text_atomic(Path(folder) / FILE, json.dumps(asdict(prepared)))


def load(folder: str | Path) -> KTPrepared:
    path = Path(folder) / FILE
    if not path.is_file():
        raise DataError(path, "not found: is this the folder of a knowledge-tracing teacher (raykd kt teacher)?")
    raw = json.loads(path.read_text())
    raw["item_skill"] = [tuple(pair) for pair in raw.get("item_skill", [])]
    return KTPrepared(**raw)


def reuse(folder: str | Path, cfg: KTDataConfig) -> tuple[KTDataset, KTPrepared]:
    """The data and split the teacher in `folder` used, read again and checked against its digest."""
    prepared = load(folder)
    ds = read(cfg)
    if ds.digest() != prepared.digest:
        raise DataError(ds.name, f"the data differs from what the teacher in {folder} was trained on (digest "
                                 f"{ds.digest()[:12]} != {prepared.digest[:12]}); use the teacher's data config")
    return ds, prepared
