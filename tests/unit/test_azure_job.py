"""`hades-train azure submit`: the Azure ML command job it builds, read back from the spec that
`--dry-run` writes. Nothing here contacts Azure: building job objects with azure-ai-ml is offline,
and every test runs with the Azure client, the credential and outgoing sockets made to fail, except
the last, which hands `submit` a fake client.

The fixtures and fakes here (``no_azure``, ``code_snapshot``, ``fake_workspace``) serve the tests of
`hades-train azure pipeline` too (test_azure_pipeline.py imports them)."""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from hades_training.azure_job import (
    DEFAULT_BASE_IMAGE,
    AzureJobConfig,
    add_azure_parser,
    build_command_job,
    job_spec_yaml,
    submit,
)
from tests.conftest import REPO

# azure-ai-ml's schemas use marshmallow features that marshmallow 4 changes; not this project's concern.
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")

DATA_ARGS: dict[str, Any] = {"compute": "gpu-a100", "data_path": "hades/2024-05", "config": "configs/train.yaml"}


class ContactedAzureError(AssertionError):
    """Raised by anything that would reach Azure (or the network) in these tests."""


@pytest.fixture(autouse=True)
def no_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating an Azure ML client or a credential, or opening a connection, fails the test."""
    import azure.ai.ml
    import azure.identity

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ContactedAzureError("a dry run must not create an Azure client, credential or connection")

    monkeypatch.setattr(azure.ai.ml, "MLClient", refuse)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def code_snapshot(root: Path) -> Path:
    """A code snapshot root at ``root``: the repository's two packages."""
    for package in ("hades_perception", "training"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return root


class FakeCredential:
    """Stands in for DefaultAzureCredential: no workspace can be reached from here."""


class FakeMLClient:
    """Stands in for azure.ai.ml.MLClient and records what `submit` hands it."""

    made: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        FakeMLClient.made = {"client": kwargs}
        self.jobs = SimpleNamespace(create_or_update=self._create_job)
        self.schedules = SimpleNamespace(begin_create_or_update=self._create_schedule)

    def _create_job(self, job: Any, **kwargs: Any) -> SimpleNamespace:
        self.made["job"], self.made["kwargs"] = job, kwargs
        return SimpleNamespace(name="calm_leaf_1", studio_url="https://ml.azure.com/runs/calm_leaf_1")

    def _create_schedule(self, schedule: Any, **kwargs: Any) -> SimpleNamespace:
        self.made["schedule"], self.made["kwargs"] = schedule, kwargs
        return SimpleNamespace(result=lambda: SimpleNamespace(name=schedule.name))


@pytest.fixture
def fake_workspace(monkeypatch: pytest.MonkeyPatch) -> type[FakeMLClient]:
    """Past the Azure boundary, with fakes: the workspace from the environment, a recording client."""
    import azure.ai.ml
    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", FakeCredential)
    monkeypatch.setattr(azure.ai.ml, "MLClient", FakeMLClient)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "1111-2222")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-hades")
    monkeypatch.setenv("AZUREML_WORKSPACE", "mlw-hades")
    return FakeMLClient


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A code snapshot root: the repository's two packages and a training config."""
    root = code_snapshot(tmp_path / "repo")
    (root / "training" / "hades_training" / "__pycache__").mkdir()
    (root / "training" / "hades_training" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    (root / "configs").mkdir()
    (root / "configs" / "train.yaml").write_text("epochs: 1\n")
    return root


def dry_run(cfg: AzureJobConfig, out: Path) -> dict[str, Any]:
    spec = Path(submit(cfg, dry_run=True, spec_out=out / "job.yaml"))
    assert spec == out / "job.yaml" and spec.is_file()
    return yaml.safe_load(spec.read_text())


def test_dry_run_writes_a_command_job_that_runs_the_train_cli_on_the_cluster(repo: Path, tmp_path: Path):
    spec = dry_run(AzureJobConfig(code_dir=repo, **DATA_ARGS), tmp_path / "out")

    assert spec["type"] == "command"
    assert spec["command"] == (
        "hades-train train --data ${{inputs.data}} --out ${{outputs.model}} --config configs/train.yaml"
    )
    assert spec["code"] == str(repo)
    assert spec["inputs"]["data"] == {
        "type": "uri_folder",
        "path": "azureml://datastores/workspaceblobstore/paths/hades/2024-05",
        "mode": "ro_mount",
    }
    assert spec["outputs"]["model"] == {"type": "uri_folder", "mode": "rw_mount"}
    assert spec["compute"] == "azureml:gpu-a100"
    assert spec["experiment_name"] == "hades-perception"
    assert spec["environment_variables"]["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert spec["environment_variables"]["MLFLOW_EXPERIMENT_NAME"] == "hades-perception"
    assert spec["resources"]["instance_count"] == 1
    assert "distribution" not in spec  # one GPU: a plain process, no launcher
    assert spec["tags"]["hades_data"] == spec["inputs"]["data"]["path"]
    assert spec["identity"] == {"type": "managed_identity"}  # the cluster's training identity reads the data


def test_the_submitter_identity_can_read_the_data_instead(repo: Path, tmp_path: Path):
    spec = dry_run(AzureJobConfig(code_dir=repo, identity="user", **DATA_ARGS), tmp_path)
    assert spec["identity"] == {"type": "user_identity"}


def test_the_default_environment_is_built_from_a_pytorch_cuda_image_with_the_repository_installed(
    repo: Path, tmp_path: Path
):
    spec = dry_run(AzureJobConfig(code_dir=repo, **DATA_ARGS), tmp_path / "out")

    context = Path(spec["environment"]["build"]["path"])
    assert context == tmp_path / "out" / "environment"
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.splitlines()[2] == f"FROM {DEFAULT_BASE_IMAGE}"
    assert "/opt/hades/src/hades_perception /opt/hades/src/training azureml-mlflow" in dockerfile
    assert (context / "training" / "pyproject.toml").read_text() == (repo / "training" / "pyproject.toml").read_text()
    assert (context / "hades_perception" / "hades_perception" / "__init__.py").is_file()
    assert not list(context.rglob("__pycache__")) and not list(context.rglob("*.egg-info"))


def test_the_environment_is_rebuilt_only_when_the_packages_change(repo: Path, tmp_path: Path):
    cfg = AzureJobConfig(code_dir=repo, **DATA_ARGS)
    first = dry_run(cfg, tmp_path / "a")["environment"]["version"]
    again = dry_run(cfg, tmp_path / "b")["environment"]["version"]
    (repo / "training" / "hades_training" / "cli.py").write_text("# changed\n")
    changed = dry_run(cfg, tmp_path / "c")["environment"]["version"]
    assert first == again != changed


def test_a_docker_image_replaces_the_base_image_and_a_registered_environment_is_used_as_it_is(
    repo: Path, tmp_path: Path
):
    image = "mcr.microsoft.com/azureml/curated/acpt-pytorch-2.2-cuda12.1:18"
    spec = dry_run(AzureJobConfig(code_dir=repo, environment=image, **DATA_ARGS), tmp_path / "image")
    assert f"FROM {image}\n" in (Path(spec["environment"]["build"]["path"]) / "Dockerfile").read_text()

    for given, used in (("hades-train:3", "azureml:hades-train:3"), ("azureml:hades-train@latest", None)):
        out = tmp_path / given.replace(":", "_").replace("@", "_")
        spec = dry_run(AzureJobConfig(code_dir=repo, environment=given, **DATA_ARGS), out)
        assert spec["environment"] == (used or given)
        assert not (out / "environment").exists()


@pytest.mark.parametrize(
    ("nodes", "gpus", "processes_per_node"),
    [(1, 4, 4), (2, 4, 4), (2, 1, 1)],
)
def test_several_gpus_run_one_process_each_through_the_pytorch_distribution(
    repo: Path, tmp_path: Path, nodes: int, gpus: int, processes_per_node: int
):
    spec = dry_run(AzureJobConfig(code_dir=repo, instance_count=nodes, gpus_per_node=gpus, **DATA_ARGS), tmp_path)
    assert spec["distribution"] == {"type": "pytorch", "process_count_per_instance": processes_per_node}
    assert spec["resources"]["instance_count"] == nodes
    assert spec["tags"]["gpus"] == str(nodes * gpus)
    assert spec["command"].startswith("hades-train train ")  # the PyTorch distribution is the launcher


def test_extra_train_arguments_are_appended_as_they_are_shell_quoted(repo: Path, tmp_path: Path):
    cfg = AzureJobConfig(code_dir=repo, extra_args=["--set", "epochs=40", "--split", "run 7; a'b"], **DATA_ARGS)
    spec = dry_run(cfg, tmp_path)
    assert spec["command"].endswith("--config configs/train.yaml --set epochs=40 --split 'run 7; a'\"'\"'b'")


def test_the_spec_is_one_azure_ai_ml_loads_back_as_the_same_job(repo: Path, tmp_path: Path):
    from azure.ai.ml import PyTorchDistribution, load_job
    from azure.ai.ml.entities import Command

    cfg = AzureJobConfig(code_dir=repo, instance_count=2, gpus_per_node=2, display_name="lr sweep 3", **DATA_ARGS)
    job = load_job(Path(submit(cfg, dry_run=True, spec_out=tmp_path / "job.yaml")))
    assert isinstance(job, Command)  # the command-job form `az ml job create -f` takes
    assert job.command == build_command_job(cfg, context_dir=tmp_path / "again").command
    assert job.compute == "gpu-a100" and job.display_name == "lr sweep 3"
    assert job.resources.instance_count == 2
    assert isinstance(job.distribution, PyTorchDistribution) and job.distribution.process_count_per_instance == 2


def test_the_job_is_tagged_with_the_git_commit_of_the_snapshot(repo: Path, tmp_path: Path):
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    tags = dry_run(AzureJobConfig(code_dir=repo, **DATA_ARGS), tmp_path / "clean")["tags"]
    assert tags["git_commit"] == head and tags["git_dirty"] == "false"
    (repo / "configs" / "train.yaml").write_text("epochs: 2\n")
    assert dry_run(AzureJobConfig(code_dir=repo, **DATA_ARGS), tmp_path / "dirty")["tags"]["git_dirty"] == "true"


def test_outside_a_git_checkout_there_is_no_commit_tag(repo: Path, tmp_path: Path):
    assert "git_commit" not in dry_run(AzureJobConfig(code_dir=repo, **DATA_ARGS), tmp_path)["tags"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gpus_per_node": 0}, "gpus_per_node must be a whole number >= 1"),
        ({"instance_count": 0}, "instance_count must be a whole number >= 1"),
        ({"instance_count": -2}, "--instance-count 1 or more"),
        ({"compute": " "}, "compute is empty; give it with --compute"),
        ({"data_path": "azureml://datastores/x/paths/y"}, "--data-path is a folder inside the datastore"),
        ({"extra_args": ["--out", "/tmp/m"]}, "the job sets --out"),
        ({"extra_args": ["--data=/mnt/x"]}, "the job sets --data"),
        ({"identity": "service_principal"}, "identity must be one of managed, user"),
    ],
)
def test_impossible_values_are_refused_with_what_to_give_instead(change: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        AzureJobConfig(**{**DATA_ARGS, **change})


def test_the_config_must_be_a_file_inside_the_code_snapshot(repo: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("epochs: 1\n")
    with pytest.raises(ValueError, match="outside the code folder"):
        submit(AzureJobConfig(code_dir=repo, **{**DATA_ARGS, "config": str(outside)}), True, tmp_path / "j.yaml")
    with pytest.raises(ValueError, match="does not exist"):
        submit(AzureJobConfig(code_dir=repo, **{**DATA_ARGS, "config": "configs/nope.yaml"}), True, tmp_path / "j.yaml")
    assert not (tmp_path / "j.yaml").exists()


def test_the_training_config_is_checked_before_any_gpu_is_paid_for(repo: Path, tmp_path: Path):
    (repo / "configs" / "bad.yaml").write_text("epochz: 3\n")
    with pytest.raises(ValueError, match="unknown config keys"):
        submit(AzureJobConfig(code_dir=repo, **{**DATA_ARGS, "config": "configs/bad.yaml"}), True, tmp_path / "j.yaml")
    with pytest.raises(ValueError, match="--set expects key=value"):
        submit(AzureJobConfig(code_dir=repo, extra_args=["--set", "lr"], **DATA_ARGS), True, tmp_path / "j.yaml")
    assert not (tmp_path / "j.yaml").exists()


def test_the_job_experiment_must_be_the_one_the_train_command_logs_to(repo: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="give --experiment-name hades-perception or"):
        submit(AzureJobConfig(code_dir=repo, experiment_name="sweeps", **DATA_ARGS), True, tmp_path / "j.yaml")

    (repo / "configs" / "sweep.yaml").write_text("experiment: sweeps\n")
    with pytest.raises(ValueError, match="experiment is 'sweeps' but the job's is 'hades-perception'"):
        submit(
            AzureJobConfig(code_dir=repo, **{**DATA_ARGS, "config": "configs/sweep.yaml"}), True, tmp_path / "j.yaml"
        )

    matching = [
        AzureJobConfig(code_dir=repo, experiment_name="sweeps", **{**DATA_ARGS, "config": "configs/sweep.yaml"}),
        AzureJobConfig(code_dir=repo, experiment_name="sweeps", extra_args=["--set", "experiment=sweeps"], **DATA_ARGS),
        AzureJobConfig(code_dir=repo, experiment_name="sweeps", extra_args=["--set=experiment=sweeps"], **DATA_ARGS),
    ]
    for i, cfg in enumerate(matching):
        assert dry_run(cfg, tmp_path / str(i))["experiment_name"] == "sweeps"


def test_submitting_without_workspace_coordinates_says_which_are_missing_and_how_to_give_them(
    repo: Path, tmp_path: Path
):
    cfg = AzureJobConfig(code_dir=repo, subscription_id="0000-sub", **DATA_ARGS)
    with pytest.raises(ValueError, match="workspace coordinates missing") as err:
        submit(cfg, dry_run=False, spec_out=tmp_path / "job.yaml")
    assert "--resource-group (or AZURE_RESOURCE_GROUP)" in str(err.value)
    assert "--workspace (or AZUREML_WORKSPACE)" in str(err.value)
    assert "--subscription-id" not in str(err.value)
    assert not (tmp_path / "job.yaml").exists()  # refused before anything was written or created


def test_credentials_in_the_environment_never_reach_the_spec_or_the_log(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    secrets = {
        "AZURE_CLIENT_SECRET": "s3cr3t-client-value",
        "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    cfg = AzureJobConfig(
        code_dir=repo, subscription_id="9b1c-subscription", resource_group="rg", workspace="ws", **DATA_ARGS
    )
    text = Path(submit(cfg, dry_run=True, spec_out=tmp_path / "job.yaml")).read_text()
    for value in secrets.values():
        assert value not in text and value not in caplog.text
    assert "AccountKey" not in text
    assert "9b1c-subscription" not in text  # the job needs no workspace coordinates: they stay out too


@pytest.mark.parametrize(
    "leak",
    ["https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=abcDEF123%3D", "AccountKey=c2VjcmV0a2V5"],
)
def test_a_key_or_sas_token_passed_to_the_job_is_refused_without_echoing_it(repo: Path, tmp_path: Path, leak: str):
    cfg = AzureJobConfig(code_dir=repo, extra_args=["--init-from", leak], **DATA_ARGS)
    with pytest.raises(ValueError, match="must not carry credentials") as err:
        job_spec_yaml(build_command_job(cfg, context_dir=tmp_path / "env"))
    assert leak not in str(err.value)
    with pytest.raises(ValueError, match="must not carry credentials"):
        submit(cfg, dry_run=True, spec_out=tmp_path / "job.yaml")
    assert not (tmp_path / "job.yaml").exists()


def azure_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hades-train")
    add_azure_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_the_cli_dry_run_writes_the_spec_with_the_train_arguments_after_the_separator(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    spec_out = tmp_path / "azure" / "job.yaml"
    args = azure_cli(
        "azure", "submit", "--compute", "gpu-v100", "--datastore", "hadesdata", "--data-path", "plates/v2",
        "--config", "configs/train.yaml", "--code-dir", str(repo), "--gpus-per-node", "2",
        "--dry-run", "--spec-out", str(spec_out), "--", "--set", "epochs=3", "--set", "seed=1",
    )  # fmt: skip
    assert args.func(args) == 0
    assert str(spec_out) in capsys.readouterr().out

    spec = yaml.safe_load(spec_out.read_text())
    assert spec["command"].endswith("--config configs/train.yaml --set epochs=3 --set seed=1")
    assert spec["inputs"]["data"]["path"] == "azureml://datastores/hadesdata/paths/plates/v2"
    assert spec["compute"] == "azureml:gpu-v100"
    assert spec["distribution"] == {"type": "pytorch", "process_count_per_instance": 2}
    assert (spec_out.parent / "environment" / "Dockerfile").is_file()


def test_the_cli_without_a_workspace_tells_how_to_give_it(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    args = azure_cli(
        "azure", "submit", "--compute", "gpu", "--data-path", "d", "--config", "configs/train.yaml",
        "--code-dir", str(repo), "--spec-out", str(tmp_path / "job.yaml"),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"--subscription-id \(or AZURE_SUBSCRIPTION_ID\)"):
        args.func(args)


def test_the_cli_requires_compute_data_and_config(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_:
        azure_cli("azure", "submit", "--dry-run")
    assert exit_.value.code == 2
    assert "--compute" in capsys.readouterr().err


def test_submit_uses_the_workspace_from_the_environment_and_returns_the_studio_url(
    repo: Path, tmp_path: Path, fake_workspace: type[FakeMLClient]
):
    """The one test past the Azure boundary: the client is a recording stand-in, since no
    workspace can be reached from here. It shows what `submit` hands to azure-ai-ml."""
    args = azure_cli(
        "azure", "submit", "--compute", "gpu", "--data-path", "d", "--config", "configs/train.yaml",
        "--code-dir", str(repo), "--spec-out", str(tmp_path / "job.yaml"),
    )  # fmt: skip
    assert args.func(args) == 0

    made = fake_workspace.made
    assert isinstance(made["client"].pop("credential"), FakeCredential)
    assert made["client"] == {
        "subscription_id": "1111-2222",
        "resource_group_name": "rg-hades",
        "workspace_name": "mlw-hades",
    }
    assert made["job"].command.startswith("hades-train train --data ${{inputs.data}}")
    assert made["kwargs"] == {"experiment_name": "hades-perception"}
    assert "1111-2222" not in (tmp_path / "job.yaml").read_text()  # the record of what was sent
