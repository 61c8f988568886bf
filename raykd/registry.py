"""MLflow Model Registry: students logged as pyfunc models, the champion alias, and the lineage chain.

A registered version carries tags that point back along the chain:
    raykd.tune_run_id -> raykd.teacher_run_id -> raykd.soft_labels_artifact / raykd.soft_labels_digest
    -> raykd.data_digest, plus raykd.git_commit (the code version).
`lineage("NAME@champion")` follows them and prints the chain back to the data.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from raykd.errors import RaykdError

CHAMPION = "champion"
LINEAGE_TAGS = ("raykd.tune_run_id", "raykd.teacher_run_id", "raykd.soft_labels_artifact",
                "raykd.soft_labels_digest", "raykd.data_digest", "raykd.git_commit")


# What a logged model needs to score, pinned to the versions it was logged with. raykd itself is not on the
# public index: its code travels inside the model (`code_paths`), so no look-alike package can stand in for it.
SCORING_PACKAGES = ("numpy", "pandas", "pyarrow", "pydantic", "pyyaml", "scikit-learn", "onnx", "onnxruntime",
                    "torch", "safetensors", "tokenizers", "transformers", "peft")


def pinned_requirements(packages: tuple[str, ...] = SCORING_PACKAGES) -> list[str]:
    """`name==version` for each installed package of `packages` (as installed where the model is logged)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in packages:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def raykd_code() -> str:
    import raykd

    return str(Path(raykd.__file__).resolve().parent)


class RaykdPyfunc(mlflow.pyfunc.PythonModel):
    """Lets any MLflow tool score with a raykd model as `raykd predict` does: input rows `text` with `task` (which
    a one-task model may leave out), optionally `id`, and `question` / `reference` for a model that reads them;
    output `id, task, prediction, confidence, score_set, needs_review, p_<label>...`, the table `raykd predict`
    writes."""

    # No type hints on these two: MLflow reads them as a schema and warns about plain ones.
    def load_context(self, context):  # noqa: ANN001
        from raykd.scoring import load_scorer

        self.scorer = load_scorer(context.artifacts["raykd_model"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        import pandas as pd

        from raykd.predict.rows import score_dataset, scoring_dataset

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        ds = scoring_dataset(frame, self.scorer.layout, "model input")
        scored, _ = score_dataset(self.scorer, ds)
        return scored


def model_signature(model_dir: str | Path) -> Any:
    """The columns a raykd model reads (question and reference only for one that reads them) and writes."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from raykd.heads import TaskLayout
    from raykd.scoring import MANIFEST, prob_columns

    manifest = json.loads((Path(model_dir) / MANIFEST).read_text())
    layout = TaskLayout.from_list(manifest["tasks"])
    # students say so at the top of the manifest (a pair student always reads references), teachers in `model`
    reads_question = bool(manifest.get("include_question") or manifest.get("arch") == "pair"
                          or manifest.get("model", {}).get("include_question"))
    inputs = [ColSpec("string", "id", required=False), ColSpec("string", "task", required=len(layout.tasks) > 1),
              ColSpec("string", "text")]
    if reads_question:
        inputs += [ColSpec("string", "question", required=False), ColSpec("string", "reference", required=False)]
    outputs = [ColSpec("string", c) for c in ("id", "task", "prediction")] + [
        ColSpec("double", "confidence"), ColSpec("string", "score_set"), ColSpec("boolean", "needs_review")] + [
        ColSpec("double", c) for c in prob_columns(layout)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def log_model(model_dir: str | Path, name: str = "model") -> Any:
    """Log a raykd model folder as an MLflow pyfunc model in the active run; returns the ModelInfo."""
    return mlflow.pyfunc.log_model(name=name, python_model=RaykdPyfunc(), artifacts={"raykd_model": str(model_dir)},
                                   signature=model_signature(model_dir), code_paths=[raykd_code()],
                                   pip_requirements=pinned_requirements())


class KTSimulatorPyfunc(mlflow.pyfunc.PythonModel):
    """A knowledge-tracing simulator for MLflow tools: rows `history` (JSON [[skill, correct], ...]) and
    `next_skills` (JSON [skill, ...]); output the probability of a correct answer on each next skill."""

    def load_context(self, context):  # noqa: ANN001
        from raykd.kt.simulator import Simulator

        self.simulator = Simulator.load(context.artifacts["simulator"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        import pandas as pd

        out = [self.simulator.predict([(int(s), int(c)) for s, c in json.loads(h)], json.loads(n)).probabilities
               for h, n in zip(model_input["history"], model_input["next_skills"], strict=True)]
        return pd.DataFrame({"probabilities": [json.dumps(p) for p in out]})


def log_simulator(folder: str | Path, name: str = "champion") -> Any:
    """Log a knowledge-tracing champion folder as an MLflow pyfunc model in the active run."""
    return mlflow.pyfunc.log_model(name=name, python_model=KTSimulatorPyfunc(), artifacts={"simulator": str(folder)},
                                   code_paths=[raykd_code()], pip_requirements=pinned_requirements())


def register_champion(model_uri: str, registered_name: str, tags: dict[str, str]) -> Any:
    """Register `model_uri`, tag the version with its lineage and point the `champion` alias at it."""
    from mlflow.tracking import MlflowClient

    version = mlflow.register_model(model_uri, registered_name)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version.version, key, str(value))
    client.set_registered_model_alias(registered_name, CHAMPION, version.version)
    return version


def _when(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%d %H:%M} UTC"


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`NAME@ALIAS`, `NAME/VERSION` or `models:/NAME@ALIAS` -> (name, alias, version)."""
    ref = ref.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, alias, None
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        return name, None, version
    return ref, CHAMPION, None


def lineage(ref: str, tracking_uri: str | None = None) -> list[tuple[str, str]]:
    """The chain from a registered model back to its data, as (step, description) pairs."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    name, alias, version = parse_model_ref(ref)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as e:
        raise RaykdError(f"{ref}: no such registered model version ({e.message})") from None
    tags = mv.tags
    chain = [("model", f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"),
             ("version", f"{mv.version} (run {mv.run_id}, registered {_when(mv.creation_timestamp)})")]
    if tags.get("raykd.family") == "knowledge-tracing":
        return chain + _kt_lineage(client, tags)
    if mv.run_id:
        run = client.get_run(mv.run_id)
        m = run.data.metrics
        arch = run.data.params.get("student.arch", "?")
        val, test = m.get("val.score", math.nan), m.get("test.score", math.nan)
        chain.append(("student run", f"{mv.run_id}: {arch} student, {int(m.get('parameters', 0)):,} parameters, "
                                     f"val {val:.4f}, test {test:.4f}"))
    if tags.get("raykd.tune_run_id"):
        tune = client.get_run(tags["raykd.tune_run_id"])
        chain.append(("tune search", f"{tune.info.run_id}: {tune.data.params.get('num_samples', '?')} trials "
                                     f"({tune.info.run_name})"))
    if tags.get("raykd.soft_labels_artifact"):
        chain.append(("soft labels", f"{tags['raykd.soft_labels_artifact']} "
                                     f"(sha256 {tags.get('raykd.soft_labels_digest', '?')})"))
    if tags.get("raykd.teacher_run_id"):
        teacher = client.get_run(tags["raykd.teacher_run_id"])
        tm = teacher.data.metrics
        score = tm.get("test.score", tm.get("validation.score", float("nan")))
        backbone = teacher.data.tags.get("raykd.backbone", "?")
        chain.append(("teacher run", f"{teacher.info.run_id}: backbone {backbone}, test score {score:.4f}"))
        for member_id in filter(None, teacher.data.tags.get("raykd.member_run_ids", "").split(",")):
            member = client.get_run(member_id)  # an ensemble's teachers
            mm = member.data.metrics
            chain.append(("  member", f"{member_id}: backbone {member.data.tags.get('raykd.backbone', '?')}, "
                                      f"test score {mm.get('test.score', float('nan')):.4f}"))
        for ds_input in teacher.inputs.dataset_inputs:
            chain.append(("teacher data", f"{ds_input.dataset.name} (MLflow dataset digest {ds_input.dataset.digest})"))
    chain.append(("data digest", tags.get("raykd.data_digest", "?")))
    chain.append(("code", tags.get("raykd.git_commit", "?")))
    return chain


def _kt_lineage(client: Any, tags: dict[str, str]) -> list[tuple[str, str]]:
    """A knowledge-tracing simulator's chain: students and trials, soft labels, teacher, language-model knowledge."""
    distill = client.get_run(tags["raykd.distill_run_id"])
    m = distill.data.metrics
    teacher = client.get_run(tags["raykd.teacher_run_id"])
    return [("student run", f"{distill.info.run_id}: DKT champion, test AUC {m.get('champion.test_auc', math.nan):.4f}"
                            f" (no-KD twin {m.get('twin.test_auc', math.nan):.4f}); trials "
                            f"{distill.data.params.get('search.kd_weight', '?')} x "
                            f"{distill.data.params.get('search.temperature', '?')} ({distill.info.run_name})"),
            ("soft labels", f"{tags.get('raykd.soft_labels_artifact', '?')} "
                            f"(sha256 {tags.get('raykd.soft_labels_digest', '?')})"),
            ("teacher run", f"{teacher.info.run_id}: AttentionKT, test AUC "
                            f"{teacher.data.metrics.get('test_auc', math.nan):.4f}"),
            ("knowledge", tags.get("raykd.knowledge", "?")),
            ("data digest", tags.get("raykd.data_digest", "?")),
            ("code", tags.get("raykd.git_commit", "?"))]
