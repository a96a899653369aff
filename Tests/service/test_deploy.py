"""Deployment files, checked statically (no Docker engine here): the Dockerfile's stages, user, entrypoint and
runtime libraries (against `ldd` of the built binary), the Kubernetes manifests, the compose file, the nginx site."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages() -> list[dict]:
    result = []
    for word, rest in instructions(DOCKERFILE):
        if word == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            result.append({"image": m.group(1), "name": (m.group(2) or "").lower(), "steps": []})
        elif result:
            result[-1]["steps"].append((word, rest))
    return result


def args() -> dict:
    found = {}
    for word, rest in instructions(DOCKERFILE):
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            found[k.strip()] = v.strip()
        if word == "FROM":
            break
    return found


def resolve(image: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args().get(m.group(1), m.group(0)), image)


def apt_packages(stage: dict) -> set[str]:
    pkgs = set()
    for word, rest in stage["steps"]:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            tokens = shlex.split(cmd)
            if "apt-get" in tokens and "install" in tokens:
                after = tokens[tokens.index("install") + 1:]
                pkgs |= {t for t in after if not t.startswith("-") and "=" not in t}
    return pkgs


def test_dockerfile_is_multi_stage_release_static():
    s = stages()
    assert len(s) >= 2, "build and runtime stages"
    build, runtime = s[0], s[-1]
    assert resolve(build["image"]).startswith("swift:6.3"), build["image"]
    assert resolve(runtime["image"]) == "debian:bookworm-slim", runtime["image"]
    runs = " ".join(rest for word, rest in build["steps"] if word == "RUN")
    assert re.search(r"swift build -c release --static-swift-stdlib", runs)
    copies = [rest for word, rest in runtime["steps"] if word == "COPY"]
    assert any(f"--from={build['name']}" in c for c in copies), copies
    # nothing heavy in the runtime stage: no compilers, no -dev packages
    assert not [p for p in apt_packages(runtime) if p.endswith("-dev") or p in ("build-essential", "gcc", "clang")]


def test_dockerfile_user_entrypoint_expose_volume():
    runtime = stages()[-1]
    steps = runtime["steps"]
    users = [rest for word, rest in steps if word == "USER"]
    assert users and re.fullmatch(r"\d+(:\d+)?", users[-1]), users
    assert int(users[-1].split(":")[0]) != 0
    entry = [rest for word, rest in steps if word == "ENTRYPOINT"]
    assert len(entry) == 1
    argv = json.loads(entry[0])  # exec form: a JSON array, so the server is PID 1 and gets SIGTERM
    assert isinstance(argv, list) and argv[0].endswith("spherecorr-server")
    for word, rest in steps:
        if word == "CMD":
            assert rest.startswith("["), "CMD must be exec form"
    assert any(word == "EXPOSE" and "8080" in rest.split() for word, rest in steps)
    assert any(word == "VOLUME" and "/bundles" in rest for word, rest in steps)
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "SPHERECORR_BUNDLES=/bundles" in env and "SPHERECORR_PORT=8080" in env


def test_runtime_stage_installs_the_issue_libraries():
    pkgs = apt_packages(stages()[-1])
    assert {"libopenblas0", "libdnnl2", "libjpeg62-turbo", "libpng16-16", "libgomp1"} <= pkgs, pkgs


# Packages of debian:bookworm-slim itself (priority required/important): they need no install line.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def dependency_closure(packages: set[str]) -> set[str]:
    """Installed packages reachable through Depends/Pre-Depends (every alternative that is installed), from dpkg."""
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Depends}, ${Pre-Depends}", p],
                           capture_output=True, text=True)
        if q.returncode != 0 or "install ok installed" not in q.stdout:
            continue
        seen.add(p)
        for alt in re.split(r"[,|]", q.stdout.split("\t", 1)[1]):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name:
                todo.append(name)
    return seen


def release_binary() -> Path | None:
    for candidate in (os.environ.get("SPHERECORR_RELEASE_SERVER"), REPO / ".build/release/spherecorr-server",
                      os.environ.get("SPHERECORR_SERVER"), REPO / ".build/debug/spherecorr-server"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.mark.skipif(shutil.which("ldd") is None or shutil.which("dpkg-query") is None, reason="needs ldd and dpkg")
def test_every_linked_library_comes_from_a_runtime_package():
    binary = release_binary()
    if binary is None:
        pytest.skip("no built spherecorr-server")
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60, check=True).stdout
    provided = dependency_closure(apt_packages(stages()[-1]) | BASE_IMAGE_PACKAGES)
    missing = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if not m:
            continue
        soname, path = m.groups()
        # The Swift runtime and Foundation are linked statically in the image (--static-swift-stdlib); a debug or
        # non-static build resolves them from the toolchain.
        if re.match(r"lib(swift|_?Foundation|dispatch|BlocksRuntime)", soname) or "/swift/" in path:
            continue
        owner = None
        for candidate in (os.path.realpath(path), path):
            q = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
            if q.returncode == 0:
                owner = q.stdout.split(":")[0].strip()
                break
        if owner is None or owner not in provided:
            missing.append((soname, path, owner))
    assert not missing, f"linked but not installed by the runtime stage: {missing}"


# ---------------------------------------------------------------- Kubernetes, compose, nginx

yaml = pytest.importorskip("yaml")


def documents(name: str) -> list[dict]:
    docs = []
    for p in sorted((REPO / "deploy/kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(p.read_text()) if d]
    return [d for d in docs if d["kind"] == name]


def container():
    (dep,) = documents("Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, c


def env_of(c) -> dict:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def test_kubernetes_probes_and_grace():
    dep, c = container()
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    env = env_of(c)
    drain = float(env["SPHERECORR_DRAIN_DELAY"])
    shutdown = float(env.get("SPHERECORR_SHUTDOWN_TIMEOUT") or 20)
    assert drain > 0
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain + shutdown
    assert c["readinessProbe"]["periodSeconds"] < drain  # endpoints go before the listener closes
    assert any(p["containerPort"] == 8080 for p in c["ports"])


def test_kubernetes_security_resources_volumes():
    dep, c = container()
    pod = dep["spec"]["template"]["spec"]
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True
    user = [rest for word, rest in stages()[-1]["steps"] if word == "USER"][-1]
    assert sc["runAsUser"] == int(user.split(":")[0])
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "/bundles" in mounts and mounts["/bundles"] in {v["name"] for v in pod["volumes"]}
    assert env_of(c)["SPHERECORR_BUNDLES"] == "/bundles"


def test_kubernetes_service_pdb_hpa():
    (svc,) = documents("Service")
    (pdb,) = documents("PodDisruptionBudget")
    (hpa,) = documents("HorizontalPodAutoscaler")
    dep, _ = container()
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_compose_file():
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    svc = compose["services"]["spherecorr"]
    assert any(v.split(":")[1] == "/bundles" for v in svc["volumes"])
    assert svc["user"].split(":")[0] == [rest for word, rest in stages()[-1]["steps"] if word == "USER"][-1].split(":")[0]
    assert "nginx" in compose["services"]


def nginx_size(value: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def nginx_seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def test_nginx_site_against_server_limits(server):
    conf = (REPO / "deploy/nginx/spherecorr.conf").read_text()
    limits = server.request("GET", "/v1/info").json()["limits"]  # the server's defaults

    def directive(name):
        return re.findall(rf"^\s*{name}\s+([^;]+);", conf, re.M)

    assert nginx_size(directive("client_max_body_size")[0]) > limits["max_body_bytes"]
    assert all(nginx_seconds(v) > limits["request_deadline_s"] for v in directive("proxy_read_timeout"))
    assert directive("keepalive") and all(v == "1.1" for v in directive("proxy_http_version"))
    assert all(v == '""' for v in [x.split(None, 1)[1] for x in directive("proxy_set_header") if x.startswith("Connection")])
    assert any(v.startswith("X-Request-Id $") for v in directive("proxy_set_header"))
    assert "$request_id" in conf and "$http_x_request_id" in conf
    keepalive_timeout = [nginx_seconds(v) for v in directive("keepalive_timeout")]
    assert keepalive_timeout and max(keepalive_timeout) < limits["keep_alive_timeout_s"]


# ---------------------------------------------------------------- the trainer: Kubernetes Job and compose service
# Static checks only (no cluster, no container engine): train → publish → hot reload works when the Job writes into
# the claim the server Deployment reads, from the same image, with the flags CONTRACTS promises for `fit`.

# `spherecorr-train fit` flags, as docs/CONTRACTS.md lists them; when the shared contract list is beside the clone,
# its `fit` rows are read instead, so that the two cannot drift apart unnoticed.
FIT_FLAGS = {"--data", "--backbone", "--out", "--epochs", "--batch-size", "--views", "--cache", "--save-every", "--seed",
             "--threads", "--weights", "--vp-bins", "--resume", "--skip-invalid"}
CONTRACTS = REPO.parent / "shared/docs/CONTRACTS.md"


def contract_fit_flags() -> set[str]:
    if not CONTRACTS.exists():
        return FIT_FLAGS
    rows = [line for line in CONTRACTS.read_text().splitlines() if line.startswith("| `fit")]
    assert rows, f"{CONTRACTS} has no `fit` rows"
    return set(re.findall(r"--[a-z][a-z0-9-]*", " ".join(r.split("|")[1] for r in rows)))


def flags(argv: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("--")]


def flag_value(argv: list[str], name: str) -> str:
    i = argv.index(name)
    return argv[i + 1]


def trainer_invocation(entry: list[str], args: list[str]) -> tuple[str, list[str], str | None]:
    """(binary, argv after the binary, state file whose presence adds --resume) of a container that runs the trainer,
    directly or through the `sh -c 'if [ -e STATE ]; then set -- "$@" --resume; fi; exec BINARY "$@"' NAME` wrapper."""
    entry = [e.replace("$$", "$") for e in entry]  # compose escapes $ as $$
    if entry[:2] == ["/bin/sh", "-c"]:
        script = entry[2]
        exec_ = re.search(r'exec\s+(\S+)\s+"\$@"\s*$', script)
        assert exec_, f"the wrapper must end with exec BINARY \"$@\": {script}"
        cond = re.search(r'if \[ -e (\S+) \]; then set -- "\$@" --resume; fi;', script)
        return exec_.group(1), list(entry[4:]) + list(args), cond.group(1) if cond else None
    return entry[0], list(entry[1:]) + list(args), None


def job_named(name: str) -> dict:
    (job,) = [j for j in documents("Job") if j["metadata"]["name"] == name]
    return job


def train_job():
    job = job_named("spherecorr-train")
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return job, pod, c


def claim_at(pod: dict, container: dict, path: str) -> tuple[str, bool]:
    """(claimName, read-only) of the volume `container` mounts at `path`."""
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    (vol,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "persistentVolumeClaim" in vol, f"{path} is not a PersistentVolumeClaim: {vol}"
    pvc = vol["persistentVolumeClaim"]
    return pvc["claimName"], bool(mount.get("readOnly") or pvc.get("readOnly"))


def test_every_deploy_yaml_parses_and_names_its_kind():
    for p in sorted((REPO / "deploy").rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d]
        assert docs, p
        if "kubernetes" in p.parts:
            for d in docs:
                assert d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"), (p, d)


def test_contract_fit_flags_match_this_copy():
    assert contract_fit_flags() == FIT_FLAGS


def resumes(argv: list[str], state: str | None) -> bool:
    """Every attempt after the first continues the run: --resume always, or added when fit's state file exists."""
    out = flag_value(argv, "--out").rstrip("/")
    return "--resume" in argv or state == f"{out}/resume.state"


def test_train_job_runs_fit_with_contract_flags_and_resume():
    job, pod, c = train_job()
    binary, argv, state = trainer_invocation(c["command"], c.get("args", []))
    assert binary.endswith("/spherecorr-train") and argv[0] == "fit", (binary, argv)
    used = flags(argv)
    assert set(used) <= contract_fit_flags(), set(used) - contract_fit_flags()
    assert len(used) == len(set(used)), used
    assert {"--data", "--backbone", "--out"} <= set(used)
    assert resumes(argv, state), "retries must continue the run with --resume"
    # Retries are new attempts of the same command: each continues from the checkpoint in --out.
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1
    # SIGTERM makes fit save its state at the next batch boundary: the pod must live that long.
    assert pod.get("terminationGracePeriodSeconds", 30) >= 120
    assert job["spec"].get("parallelism", 1) == 1 and job["spec"].get("completions", 1) == 1
    # --threads matches the CPU the container may use.
    assert float(flag_value(argv, "--threads")) <= float(c["resources"]["limits"]["cpu"])


def test_resume_wrapper_adds_resume_only_when_a_run_exists(tmp_path):
    if shutil.which("sh") is None:
        pytest.skip("needs sh")
    _, _, c = train_job()
    script = c["command"][2]
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    assert compose["services"]["train"]["entrypoint"][2].replace("$$", "$") == script, "compose and the Job share one wrapper"
    _, argv, state = trainer_invocation(c["command"], c["args"])
    local_state = tmp_path / "resume.state"
    probe = script.replace(state, str(local_state)).replace("exec ", "exec echo ")

    def run():
        return subprocess.run(["sh", "-c", probe, "spherecorr-train", *argv], capture_output=True, text=True,
                              check=True).stdout.split()

    first = run()
    local_state.write_bytes(b"")
    again = run()
    assert "--resume" not in first and first[1:] == argv
    assert again[1:] == argv + ["--resume"]


def test_train_job_publishes_into_the_claim_the_server_reads():
    _, dep_c = container()
    dep_pod = documents("Deployment")[0]["spec"]["template"]["spec"]
    served_claim, served_ro = claim_at(dep_pod, dep_c, env_of(dep_c)["SPHERECORR_BUNDLES"])
    _, pod, c = train_job()
    _, argv, _ = trainer_invocation(c["command"], c["args"])
    written_claim, written_ro = claim_at(pod, c, flag_value(argv, "--out"))
    assert written_claim == served_claim
    assert served_ro and not written_ro
    # The backbone, the data and the view cache are mounted too (read-only where nothing is written).
    for name in ("--backbone", "--data"):
        path = flag_value(argv, name)
        mount = max((m for m in c["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")),
                    key=lambda m: len(m["mountPath"]))
        assert mount.get("readOnly"), (name, mount)
    assert any(m["mountPath"] == flag_value(argv, "--cache") for m in c["volumeMounts"])


def test_train_job_same_image_and_security_as_the_deployment():
    dep, dep_c = container()
    dep_pod = dep["spec"]["template"]["spec"]
    _, pod, c = train_job()
    assert c["image"] == dep_c["image"]
    assert pod["securityContext"] == dep_pod["securityContext"]
    assert c["securityContext"] == dep_c["securityContext"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod.get("automountServiceAccountToken") is False
    (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in vol
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])


def test_every_claim_mounted_is_defined():
    defined = {d["metadata"]["name"]: d for d in documents("PersistentVolumeClaim")}
    used = set()
    for kind in ("Deployment", "Job"):
        for d in documents(kind):
            for v in d["spec"]["template"]["spec"]["volumes"]:
                if "persistentVolumeClaim" in v:
                    used.add(v["persistentVolumeClaim"]["claimName"])
    assert used <= set(defined), used - set(defined)
    # Server replicas on several nodes read the bundles while the Job writes them.
    _, dep_c = container()
    dep_pod = documents("Deployment")[0]["spec"]["template"]["spec"]
    bundles, _ = claim_at(dep_pod, dep_c, "/bundles")
    assert "ReadWriteMany" in defined[bundles]["spec"]["accessModes"]


def test_image_contains_the_trainer_the_job_runs():
    _, _, c = train_job()
    binary = Path(trainer_invocation(c["command"], c["args"])[0]).name
    build = stages()[0]
    runs = " ".join(rest for word, rest in build["steps"] if word == "RUN")
    assert re.search(rf"cp\s+\S*{re.escape(binary)}\S*\s+/staging", runs), runs


def test_compose_train_service_writes_the_servers_bundles():
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    server, train = compose["services"]["spherecorr"], compose["services"]["train"]
    assert train.get("profiles"), "the trainer must not start with a plain `up`"
    assert train["image"] == server["image"]
    binary, argv, state = trainer_invocation(train["entrypoint"], train["command"])
    assert binary.endswith("/spherecorr-train") and argv[0] == "fit"
    used = flags(argv)
    assert set(used) <= contract_fit_flags() and {"--data", "--backbone", "--out"} <= set(used)
    assert resumes(argv, state)

    def host_path(svc, container_path):
        (v,) = [v for v in svc["volumes"] if v.split(":")[1] == container_path]
        parts = v.split(":")
        return parts[0], len(parts) > 2 and "ro" in parts[2].split(",")

    served, served_ro = host_path(server, "/bundles")
    written, written_ro = host_path(train, flag_value(argv, "--out"))
    assert served == written and served_ro and not written_ro
    assert train["user"] == server["user"] and train.get("read_only") is True and "/tmp" in train.get("tmpfs", [])
    assert str(train.get("restart", "")).startswith("on-failure")


# ---------------------------------------------------------------- evaluation scaled out: Indexed Job of shards, then the merge
# evaluate --shard K/N in N pods (K = the completion index), then merge-reports over exactly those N partial reports.

INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def trainer_flags(subcommand: str) -> set[str] | None:
    """The flags `spherecorr-train SUBCOMMAND --help` lists, from the built binary (None when it is not built)."""
    for candidate in (REPO / ".build/release/spherecorr-train", REPO / ".build/debug/spherecorr-train"):
        if candidate.exists():
            out = subprocess.run([str(candidate), subcommand, "--help"], capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "SPHERECORR_NO_REEXEC": "1"})
            assert out.returncode == 0, out.stderr
            return set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))
    return None


def shard_jobs():
    shards = job_named("spherecorr-evaluate")
    merge = job_named("spherecorr-evaluate-merge")
    return shards, merge


def index_variable(c: dict) -> str:
    """The env var that holds the pod's completion index (downward API), or the one Kubernetes sets itself."""
    for e in c.get("env", []):
        if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == INDEX_ANNOTATION:
            return e["name"]
    return "JOB_COMPLETION_INDEX"


def expand(argv: list[str], env: dict) -> list[str]:
    """Kubernetes' $(VAR) expansion in command and args."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]


def test_evaluation_shards_are_an_indexed_job_covering_every_pair_once():
    shards, _ = shard_jobs()
    spec = shards["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert n >= 2 and spec.get("parallelism", 1) == n
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["/app/spherecorr-train"]
    argv = c["args"]
    assert argv[0] == "evaluate"
    var = index_variable(c)
    assert flag_value(argv, "--shard") == f"$({var})/{n}"
    # Each index writes its own report: expanding the index gives N distinct paths.
    reports = {expand(argv, {var: str(k)})[argv.index("--report") + 1] for k in range(n)}
    assert len(reports) == n
    used = flags(argv)
    assert len(used) == len(set(used)), used
    known = trainer_flags("evaluate")
    if known is not None:
        assert set(used) <= known, set(used) - known
    assert pod["restartPolicy"] in ("Never", "OnFailure") and spec["backoffLimit"] >= 1
    assert float(flag_value(argv, "--threads")) <= float(c["resources"]["limits"]["cpu"])


def test_merge_waits_for_the_n_shards_then_merges_exactly_them(tmp_path):
    shards, merge = shard_jobs()
    n = shards["spec"]["completions"]
    (sc,) = shards["spec"]["template"]["spec"]["containers"]
    var = index_variable(sc)
    reports = [expand(sc["args"], {var: str(k)})[sc["args"].index("--report") + 1] for k in range(n)]
    pod = merge["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["/app/spherecorr-train"] and c["args"][0] == "merge-reports"
    inputs = c["args"][1:c["args"].index("--report")]
    assert sorted(inputs) == sorted(reports)
    merged = flag_value(c["args"], "--report")
    assert merged not in reports and os.path.dirname(merged) == os.path.dirname(reports[0])
    known = trainer_flags("merge-reports")
    if known is not None:
        assert set(flags(c["args"])) <= known
    # The shards and the merge see the reports on one claim, written by both.
    claims = {claim_at(shards["spec"]["template"]["spec"], sc, "/work"), claim_at(pod, c, "/work")}
    assert len({name for name, _ in claims}) == 1 and not any(ro for _, ro in claims)
    assert merge["spec"].get("activeDeadlineSeconds"), "a merge whose shards never finish must give up"

    # The init container's wait, run with sh: it returns once every shard report exists, not before.
    (init,) = pod["initContainers"]
    assert init["image"] == c["image"] and init["command"][:2] == ["/bin/sh", "-c"]
    if shutil.which("sh") is None or shutil.which("timeout") is None:
        pytest.skip("needs sh and timeout")
    script = init["command"][2]
    base = os.path.dirname(reports[0])
    local = script.replace(base, str(tmp_path))
    for r in reports[:-1]:
        (tmp_path / os.path.basename(r)).write_text("{}")
    assert subprocess.run(["timeout", "2", "sh", "-c", local]).returncode == 124, "returned with a shard missing"
    (tmp_path / os.path.basename(reports[-1])).write_text("{}")
    assert subprocess.run(["timeout", "5", "sh", "-c", local]).returncode == 0


def test_evaluation_jobs_same_image_and_security_as_the_deployment():
    dep, dep_c = container()
    dep_pod = dep["spec"]["template"]["spec"]
    for job in shard_jobs():
        pod = job["spec"]["template"]["spec"]
        assert pod["securityContext"] == dep_pod["securityContext"]
        assert pod.get("automountServiceAccountToken") is False
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["image"] == dep_c["image"]
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind])
    # The shards read the bundle, weights and data read-only.
    shards, _ = shard_jobs()
    pod = shards["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    for name in ("--bundle", "--backbone", "--data"):
        path = flag_value(c["args"], name)
        mount = max((m for m in c["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")),
                    key=lambda m: len(m["mountPath"]))
        assert mount.get("readOnly"), (name, mount)
    work, _ = claim_at(pod, c, "/work")
    defined = {d["metadata"]["name"]: d for d in documents("PersistentVolumeClaim")}
    assert "ReadWriteMany" in defined[work]["spec"]["accessModes"], "shards on several nodes write the reports"
