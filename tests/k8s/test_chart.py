"""The Helm chart rendered offline: helm lint/template, Kubernetes schemas, KubeRay CRD schemas, wiring.

No cluster runs here (no container engine): every manifest is exercised by rendering and schema checks.
"""

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from raykd.config import from_dict
from raykd.distill.config import DistillJobConfig
from raykd.serve.config import ServeConfig
from raykd.teacher.config import TeacherJobConfig
from raykd.tune.config import TuneJobConfig

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "raykd"
VALUES = [None, CHART / "ci" / "gpu-a100-values.yaml", CHART / "ci" / "minimal-values.yaml"]
K8S_VERSION = "1.35.0"


@pytest.fixture(scope="module")
def helm() -> str:
    path = REPO / ".tools" / "helm"
    if not path.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "install_k8s_tools.py")], check=False)
    if not path.exists():
        if os.environ.get("RAYKD_REQUIRE_DATA") == "1":
            pytest.fail("helm is not installed (scripts/install_k8s_tools.py)")
        pytest.skip("helm is not installed (scripts/install_k8s_tools.py)")
    return str(path)


@pytest.fixture(scope="module")
def crd_schemas(shared_data) -> dict:
    root = shared_data.parent / "k8s-schemas" / "kuberay"
    if not root.is_dir():
        pytest.fail(f"KubeRay CRD schemas not found at {root}")
    out = {}
    for kind in ("RayCluster", "RayJob", "RayService"):
        # libyaml's loader: the CRDs are ~10,000 lines each, which the pure-Python loader takes seconds over
        crd = yaml.load((root / f"ray.io_{kind.lower()}s.yaml").read_text(), Loader=yaml.CSafeLoader)
        out[kind] = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    return out


def render(helm: str, values: Path | None, *extra: str) -> list[dict]:
    """The chart rendered with `values` and `--set` pairs (each rendering once per session: tests copy it)."""
    return copy.deepcopy(_rendered(helm, values, extra))


@functools.cache
def _rendered(helm: str, values: Path | None, extra: tuple[str, ...]) -> list[dict]:
    cmd = [helm, "template", "rk", str(CHART), "--namespace", "raykd", *extra]
    if values:
        cmd += ["-f", str(values)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.load_all(out, Loader=yaml.CSafeLoader) if d]


@pytest.mark.parametrize("values", VALUES, ids=["default", "gpu-a100", "minimal"])
def test_lint_render_and_schemas(helm, crd_schemas, values):
    lint = [helm, "lint", str(CHART)] + (["-f", str(values)] if values else [])
    assert subprocess.run(lint, capture_output=True, text=True).returncode == 0
    docs = render(helm, values, "--set", "cluster.enabled=true")
    kinds = {d["kind"] for d in docs}
    assert {"RayJob", "RayCluster", "RayService", "Deployment", "Service", "NetworkPolicy", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["apiVersion"] == "ray.io/v1":
            errors = list(jsonschema.Draft7Validator(crd_schemas[doc["kind"]]).iter_errors(doc))
            assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {errors[0].message}"
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert "Secret" not in kinds  # credentials come only from existing Secrets


def by_kind(docs, kind, suffix=""):
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def ray_pod_specs(docs):
    for doc in docs:
        spec = doc.get("spec", {})
        cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or (spec if doc["kind"] == "RayCluster"
                                                                                else None)
        if cluster is None:
            continue
        yield doc, cluster["headGroupSpec"]["template"]["spec"], None
        for group in cluster.get("workerGroupSpecs", []):
            yield doc, group["template"]["spec"], group


def test_wiring(helm, monkeypatch):
    monkeypatch.setenv("RAYKD_SERVE_TOKEN", "a-token-of-at-least-sixteen")
    docs = render(helm, None, "--set", "cluster.enabled=true")
    configs = by_kind(docs, "ConfigMap", "-configs")[0]["data"]

    (teacher,) = by_kind(docs, "RayJob", "-teacher")
    assert teacher["spec"]["entrypoint"] == "python jobs/teacher.py --config /etc/raykd/teacher.yaml"
    assert teacher["spec"]["shutdownAfterJobFinishes"] is True
    cfg = from_dict(TeacherJobConfig, yaml.safe_load(configs["teacher.yaml"]))
    assert cfg.model.name_or_path == "openai/gpt-oss-20b" and cfg.deepspeed.zero_stage == 3
    (gpu,) = teacher["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    container = gpu["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["template"]["spec"]["tolerations"])
    assert cfg.scaling.num_workers * cfg.scaling.gpus_per_worker <= gpu["maxReplicas"]

    (tune,) = by_kind(docs, "RayJob", "-tune")
    assert tune["spec"]["entrypoint"] == "python jobs/tune.py --config /etc/raykd/tune.yaml"
    from_dict(TuneJobConfig, yaml.safe_load(configs["tune.yaml"]))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (cpu,) = tune["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert cpu["template"]["spec"]["containers"][0]["resources"] == values["tune"]["workers"]["resources"]
    assert cpu["maxReplicas"] == values["tune"]["workers"]["maxReplicas"]
    assert not by_kind(docs, "RayJob", "-distill") and "distill.yaml" not in configs  # off by default

    (service,) = by_kind(docs, "RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    from raykd.serve import launch as serve_app

    module, attr = app["import_path"].split(":")
    assert module == serve_app.__name__ and getattr(serve_app, attr) is serve_app.app_builder
    # `raykd serve` runs build_app(config); the RayService's builder builds the same deployment from its args.
    served = from_dict(ServeConfig, app["args"])
    built = serve_app.app_builder(app["args"])
    options = serve_app.deployment_options(served)
    config = built._bound_deployment._deployment_config
    assert config.max_ongoing_requests == options["max_ongoing_requests"] == served.max_ongoing_requests
    assert config.max_queued_requests == served.max_queued_requests
    assert config.autoscaling_config.max_replicas == app["args"]["autoscaling"]["max_replicas"]
    assert served.model == "models:/asap-science-student@champion"

    # Admission and the proxy time-out reach Serve: the time-out sits above the replica's admission limit.
    serve_cfg = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve_cfg["http_options"]["request_timeout_s"] == app["args"]["request_timeout_s"]
    assert app["args"]["request_timeout_s"] > app["args"]["max_queue_wait_s"]
    assert app["args"]["max_ongoing_requests"] >= app["args"]["max_batch_size"]
    # Only the RayService's pods run Serve's high-throughput ingress.
    for doc, pod, _ in ray_pod_specs(docs):
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        serving = doc["kind"] == "RayService"
        assert (env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1") is serving, doc["metadata"]["name"]
        assert (env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1") is serving, doc["metadata"]["name"]

    (mlflow_svc,) = by_kind(docs, "Service", "-mlflow")
    uri = f"http://{mlflow_svc['metadata']['name']}:{mlflow_svc['spec']['ports'][0]['port']}"
    assert app["args"]["tracking_uri"] == uri
    pods = list(ray_pod_specs(docs))
    assert len(pods) >= 8
    for doc, pod, _ in pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["MLFLOW_TRACKING_URI"]["value"] == uri, doc["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        sc = pod["containers"][0]["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert pod["containers"][0]["resources"]["limits"] and pod["containers"][0]["resources"]["requests"]
        # The serve token only where it serves: the RayService's pods.
        serving = doc["kind"] == "RayService"
        assert ("RAYKD_SERVE_TOKEN" in env) is serving, doc["metadata"]["name"]
        if serving:
            assert env["RAYKD_SERVE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "raykd-serve-token"
        assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "raykd-mlflow-auth"

    (mlflow,) = by_kind(docs, "Deployment", "-mlflow")
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--serve-artifacts" in args and "--app-name=basic-auth" in args
    assert not any(a.startswith("--backend-store-uri") for a in args)  # MLflow reads it from its environment
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == "postgresql://mlflow@rk-raykd-postgresql:5432/mlflow"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "raykd-postgresql"
    assert {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= env.keys()
    ini = by_kind(docs, "ConfigMap", "-mlflow-auth")[0]["data"]["basic_auth.ini"]
    assert "database_uri = postgresql://mlflow@rk-raykd-postgresql:5432/mlflow" in ini and "password" not in ini
    policies = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    mlflow_policy = policies["rk-raykd-mlflow"]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert mlflow_policy["raykd.io/mlflow-client"] == "true"


def test_student_stages_have_their_own_jobs_and_the_old_key_still_works(helm):
    docs = render(helm, None, "--set", "distill.enabled=true")
    configs = by_kind(docs, "ConfigMap", "-configs")[0]["data"]
    (distill,) = by_kind(docs, "RayJob", "-distill")
    assert distill["spec"]["entrypoint"] == "python jobs/distill.py --config /etc/raykd/distill.yaml"
    cfg = from_dict(DistillJobConfig, yaml.safe_load(configs["distill.yaml"]))
    assert cfg.data is None and set(cfg.students) == {"lstm", "moe"}  # data: the teacher's record
    # Deprecated for one release: `distill.stage: tune` runs the Tune stage from the distill key's config.
    docs = render(helm, None, "--set", "distill.stage=tune", "--set", "tune.enabled=false",
                  "--set", "distill.config.name=legacy-tune", "--set", "distill.config.num_samples=3")
    (tune,) = by_kind(docs, "RayJob", "-tune")
    assert tune["spec"]["entrypoint"] == "python jobs/tune.py --config /etc/raykd/tune.yaml"
    legacy = yaml.safe_load(by_kind(docs, "ConfigMap", "-configs")[0]["data"]["tune.yaml"])
    assert legacy["name"] == "legacy-tune" and legacy["num_samples"] == 3
    assert not by_kind(docs, "RayJob", "-distill")


def test_knowledge_tracing_job_renders_with_a_valid_config(helm):
    from raykd.kt.config import KTJobConfig

    assert not by_kind(render(helm, None), "RayJob", "-kt")  # off by default
    docs = render(helm, None, "--set", "kt.enabled=true")
    (job,) = by_kind(docs, "RayJob", "-kt")
    assert job["spec"]["entrypoint"] == "python jobs/kt.py --config /etc/raykd/kt.yaml"
    cfg = from_dict(KTJobConfig, yaml.safe_load(by_kind(docs, "ConfigMap", "-configs")[0]["data"]["kt.yaml"]))
    assert cfg.register_as == "kt-assist2009" and cfg.scaling.num_workers == 2


def test_plain_manifests_match_the_chart(helm):
    """k8s/raykd.yaml is the chart rendered with defaults (scripts/render_k8s.sh); they must not drift."""
    shipped = [d for d in yaml.safe_load_all((REPO / "k8s" / "raykd.yaml").read_text()) if d]
    out = subprocess.run([helm, "template", "raykd", str(CHART), "--namespace", "raykd", "--set",
                          "cluster.enabled=true"], capture_output=True, text=True, check=True).stdout
    assert shipped == [d for d in yaml.safe_load_all(out) if d], "run: bash scripts/render_k8s.sh"


def test_dockerfile_uses_official_ray_image_and_chart_points_to_it(helm):
    first = next(line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("FROM"))
    assert first.startswith("FROM rayproject/ray:2.60.0")
    docs = render(helm, None, "--set", "image.repository=registry.local/raykd", "--set", "image.tag=dev")
    images = {c["image"] for _, pod, _ in ray_pod_specs(docs) for c in pod["containers"]}
    assert images == {"registry.local/raykd:dev"}


def test_no_token_secret_no_endpoint_unless_anonymous_is_explicit(helm):
    failed = subprocess.run([helm, "template", "rk", str(CHART), "--set", "serve.auth.existingSecret="],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "serve.auth.existingSecret is empty" in failed.stderr
    docs = render(helm, None, "--set", "serve.auth.existingSecret=", "--set", "serve.auth.allowAnonymous=true")
    (service,) = by_kind(docs, "RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert app["args"]["allow_public_without_auth"] is True
    assert not any("RAYKD_SERVE_TOKEN" in yaml.safe_dump(pod) for _, pod, _ in ray_pod_specs(docs))
    # No endpoint, no token needed.
    assert not by_kind(render(helm, None, "--set", "serve.enabled=false", "--set", "serve.auth.existingSecret="),
                       "RayService")


def pod_templates(docs):
    """(owner, pod template) for every pod the chart makes: Deployments, StatefulSets, and each Ray CR's head,
    workers and job submitter."""
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc, spec["template"]
        cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or (spec if doc["kind"] == "RayCluster"
                                                                                else None)
        if cluster is not None:
            yield doc, cluster["headGroupSpec"]["template"]
            for group in cluster.get("workerGroupSpecs", []):
                yield doc, group["template"]
        if "submitterPodTemplate" in spec:
            yield doc, spec["submitterPodTemplate"]


def selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels and In-expressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("values", VALUES, ids=["default", "gpu-a100", "minimal"])
def test_every_pod_is_fenced_and_every_ray_cluster_needs_a_token(helm, values):
    docs = render(helm, values, "--set", "cluster.enabled=true", "--set", "distill.enabled=true",
                  "--set", "kt.enabled=true")
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    deny = policies.pop("rk-raykd-default-deny")
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    assert [p["port"] for p in deny["egress"][0]["ports"]] == [53, 53]  # DNS only
    templates = list(pod_templates(docs))
    kinds = {d["kind"] for d, _ in templates}
    assert {"Deployment", "RayJob", "RayService", "RayCluster"} <= kinds
    assert sum(1 for d, t in templates if d["kind"] == "RayJob" and "restartPolicy" in t["spec"]) == 4  # submitters
    for owner, template in templates:
        labels = template["metadata"]["labels"]
        where = f"{owner['kind']} {owner['metadata']['name']} ({labels.get('app.kubernetes.io/component')})"
        assert selects(deny["podSelector"], labels), where
        allowed = [name for name, p in policies.items() if selects(p["podSelector"], labels)]
        assert allowed, f"{where}: no policy says what it may reach"
    for doc in docs:
        if doc["apiVersion"] == "ray.io/v1":
            spec = doc["spec"]
            cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
            assert cluster["authOptions"]["mode"] == "token", doc["metadata"]["name"]
    head = policies["rk-raykd-ray-head"]
    assert head["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kuberay-operator"}
    assert {p["port"] for p in head["ingress"][0]["ports"]} == {8265, 52365}


@pytest.mark.parametrize("values", VALUES, ids=["default", "gpu-a100", "minimal"])
def test_no_secret_reaches_a_command_line(helm, values):
    """Kubernetes expands $(VAR) in args and command, which /proc shows to anyone on the node: no variable that
    carries a Secret's value (directly, or through another variable) may appear there."""
    docs = render(helm, values, "--set", "cluster.enabled=true", "--set", "serve.ingress.enabled=true")
    for owner, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            env = container.get("env", [])
            secret = {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
            for e in env:  # a variable built from a secret one is secret too
                if any(f"$({name})" in str(e.get("value", "")) for name in secret):
                    secret.add(e["name"])
            line = " ".join(map(str, container.get("command", []) + container.get("args", [])))
            leaked = [name for name in secret if f"$({name})" in line]
            assert not leaked, f"{owner['metadata']['name']}/{container['name']}: {leaked} on the command line"
            assert "password" not in line.lower()


def test_ingress_has_tls_and_the_apps_body_limit(helm):
    docs = render(helm, None, "--set", "serve.ingress.enabled=true", "--set", "serve.maxFileBytes=30000000")
    (ingress,) = by_kind(docs, "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["raykd.example.org"], "secretName": "raykd-serve-tls"}]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "29m"  # 30,000,000 bytes, rounded up
    (service,) = by_kind(docs, "RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert app["args"]["max_file_bytes"] == 30_000_000
    assert app["args"]["max_file_bytes"] <= 29 * 2**20
    plain = render(helm, None, "--set", "serve.ingress.enabled=true", "--set", "serve.ingress.tls.enabled=false")
    assert "tls" not in by_kind(plain, "Ingress")[0]["spec"]


def test_images_by_digest(helm):
    digest = "sha256:" + "ab" * 32
    docs = render(helm, None, "--set", f"image.digest={digest}", "--set", f"postgresql.image.digest={digest}")
    images = {c["image"] for _, t in pod_templates(docs) for c in t["spec"]["containers"]}
    assert images == {f"ghcr.io/raykd/raykd@{digest}", f"postgres@{digest}"}


def test_object_store_run_storage_reaches_every_stage_and_every_ray_pod(helm, monkeypatch):
    """storage.runs.objectStore (issue 31): each stage's config keeps its outputs under the URI and reads the
    teacher from there; every Ray pod of every RayJob and the RayService gets the endpoint, region and the
    Secret's keys in its environment (what bench/cluster.py gives raykd), never in a config or a command line."""
    monkeypatch.setenv("RAYKD_SERVE_TOKEN", "a-token-of-at-least-sixteen")
    store = ["--set", "storage.runs.objectStore.uri=s3://raykd-runs/prod/", "--set",
             "storage.runs.objectStore.endpoint=http://minio.storage:9000", "--set",
             "storage.runs.objectStore.existingSecret=raykd-runs-s3", "--set", "storage.runs.existingClaim=",
             "--set", "distill.enabled=true", "--set", "kt.enabled=true",
             # MLflow's artifacts in the same store, as bench/cluster.py keeps them (s3://raykd/mlflow there)
             "--set", "mlflow.artifacts.s3.bucket=s3://raykd-runs/mlflow", "--set",
             "mlflow.artifacts.s3.endpointUrl=http://minio.storage:9000", "--set",
             "mlflow.artifacts.s3.existingSecret=raykd-runs-s3"]
    docs = render(helm, None, *store)
    (mlflow,) = by_kind(docs, "Deployment", "-mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert "--artifacts-destination=s3://raykd-runs/mlflow" in container["args"] and "--serve-artifacts" in \
        container["args"]
    menv = {e["name"]: e for e in container["env"]}
    assert menv["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
    assert menv["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "raykd-runs-s3"
    configs = by_kind(docs, "ConfigMap", "-configs")[0]["data"]
    teacher = from_dict(TeacherJobConfig, yaml.safe_load(configs["teacher.yaml"]))
    tune = from_dict(TuneJobConfig, yaml.safe_load(configs["tune.yaml"]))
    distill = from_dict(DistillJobConfig, yaml.safe_load(configs["distill.yaml"]))
    assert teacher.output_dir == "s3://raykd-runs/prod/teacher"
    assert (tune.output_dir, tune.teacher) == ("s3://raykd-runs/prod/tune", "s3://raykd-runs/prod/teacher")
    assert (distill.output_dir, distill.teacher) == ("s3://raykd-runs/prod/distill", "s3://raykd-runs/prod/teacher")
    assert yaml.safe_load(configs["kt.yaml"])["output_dir"] == "s3://raykd-runs/prod/kt"
    pods = list(ray_pod_specs(docs))
    assert len(pods) >= 8 and {d["kind"] for d, _, _ in pods} >= {"RayJob", "RayService"}
    for doc, pod, _ in pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio.storage:9000", doc["metadata"]["name"]
        assert env["AWS_DEFAULT_REGION"]["value"] == "us-east-1"
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "raykd-runs-s3", "key": key}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["runs"]  # no claim needed
    # Without the object store the stages keep their folders on the claim, and their pods get no AWS settings.
    plain = render(helm, None)
    assert yaml.safe_load(by_kind(plain, "ConfigMap", "-configs")[0]["data"]["teacher.yaml"])["output_dir"] == \
        "/runs/teacher"
    for _, pod, _ in ray_pod_specs(plain):
        assert not {e["name"] for e in pod["containers"][0]["env"]} & {"AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID"}
    # Neither a claim nor a store: refused at render time, naming both.
    out = subprocess.run([helm, "template", "rk", str(CHART), "--set", "storage.runs.existingClaim="],
                         capture_output=True, text=True, env={**os.environ})
    assert out.returncode != 0 and "existingClaim" in out.stderr and "objectStore.uri" in out.stderr
