"""`hades-train azure pipeline`: the Azure ML pipeline job (and schedule) it builds, read back from the
specs that `--dry-run` writes; and the systemd timer that runs the same retraining on a workstation.
Nothing here contacts Azure: every test runs with the Azure client, the credential and outgoing
sockets made to fail (``no_azure``, from test_azure_job.py, as the other fixtures and fakes), except
the last two Azure tests, which hand `submit` a fake client."""

from __future__ import annotations

import configparser
import logging
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hades_training.azure_job import DEFAULT_BASE_IMAGE
from hades_training.azure_pipeline import (
    AzurePipelineConfig,
    build_pipeline_job,
    build_schedule,
    pipeline_spec_yaml,
    schedule_spec_path,
    submit,
)
from hades_training.cli import main
from tests.conftest import REPO
from tests.unit import test_azure_job
from tests.unit.test_azure_job import FakeCredential, FakeMLClient, code_snapshot

# azure-ai-ml's schemas use marshmallow features that marshmallow 4 changes; not this project's concern.
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")

ACCOUNT_URL = "https://hadesmodels.blob.core.windows.net"
ARGS: dict[str, Any] = {
    "compute": "gpu-a100",
    "new_data_path": "hades/labelled/2026-12",
    "gate_data_path": "hades/gate-set",
    "store": "azure://models",
    "store_account_url": ACCOUNT_URL,
}
COMMAND = (
    "hades-train pipeline --store azure://models --model hades-seedlings --new-data ${{inputs.new_data}} "
    "--gate-data ${{inputs.gate_data}} --gate-split test --out ${{outputs.work}} --state-in-store"
)
WEEKLY = "0 3 * * 1"
RETRAINING = REPO / "deploy" / "retraining"

# The fixtures shared with test_azure_job.py; pytest finds a module's fixtures by its names.
no_azure = test_azure_job.no_azure  # autouse: in this module too, no test reaches Azure
fake_workspace = test_azure_job.fake_workspace


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A code snapshot root: the repository's two packages."""
    return code_snapshot(tmp_path / "repo")


def dry_run(cfg: AzurePipelineConfig, out: Path, cron: str | None = None) -> dict[str, Any]:
    spec = Path(submit(cfg, dry_run=True, spec_out=out / "pipeline.yaml", cron=cron))
    assert spec == out / "pipeline.yaml" and spec.is_file()
    return yaml.safe_load(spec.read_text())


def load_schedule(path: Path) -> Any:
    """azure-ai-ml's load_schedule: public in some versions, only in its entities package in others."""
    import azure.ai.ml
    from azure.ai.ml.entities import _load_functions

    loader = getattr(azure.ai.ml, "load_schedule", None) or _load_functions.load_schedule
    return loader(path)


def test_dry_run_writes_a_pipeline_job_whose_one_step_runs_the_retraining_cli(repo: Path, tmp_path: Path):
    cfg = AzurePipelineConfig(code_dir=repo, pipeline_args=["--set", "epochs=20", "--iou-margin", "0.02"], **ARGS)
    spec = dry_run(cfg, tmp_path / "out")

    assert spec["type"] == "pipeline"
    assert list(spec["jobs"]) == ["retrain"]  # the stages share the work folder and decide together
    step = spec["jobs"]["retrain"]
    assert step["component"]["command"] == COMMAND + " --set epochs=20 --iou-margin 0.02"
    assert "--schedule" not in step["component"]["command"]  # a submitted job runs on its new data
    assert step["inputs"] == {
        "new_data": {"path": "${{parent.inputs.new_data}}"},
        "gate_data": {"path": "${{parent.inputs.gate_data}}"},
    }
    assert step["outputs"] == {"work": "${{parent.outputs.work}}"}
    assert spec["inputs"]["new_data"] == {
        "type": "uri_folder",
        "path": "azureml://datastores/workspaceblobstore/paths/hades/labelled/2026-12",
        "mode": "ro_mount",
    }
    assert spec["inputs"]["gate_data"]["path"] == "azureml://datastores/workspaceblobstore/paths/hades/gate-set"
    assert spec["inputs"]["gate_data"]["mode"] == "ro_mount"
    assert spec["outputs"]["work"] == {"type": "uri_folder", "mode": "rw_mount"}
    assert step["compute"] == spec["compute"] == "azureml:gpu-a100"
    assert step["component"]["is_deterministic"] is False  # Azure ML never reuses an earlier run instead
    assert step["environment_variables"] == {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "AZURE_STORAGE_ACCOUNT_URL": ACCOUNT_URL,  # the azure:// store's account, reached with the job's identity
    }
    assert step["identity"] == {"type": "managed_identity"}
    assert step["resources"]["shm_size"] == "16g"
    assert step["component"]["code"] == str(repo)
    assert spec["experiment_name"] == "hades-perception"
    assert spec["tags"] == {
        "hades_model": "hades-seedlings",
        "hades_store": "azure://models",
        "hades_new_data": spec["inputs"]["new_data"]["path"],
        "hades_gate_data": spec["inputs"]["gate_data"]["path"],
        "hades_scheduled": "false",
    }
    assert not schedule_spec_path(tmp_path / "out" / "pipeline.yaml").exists()  # no --cron, no schedule


def test_with_cron_a_schedule_beside_the_job_runs_it_weekly_with_schedule(repo: Path, tmp_path: Path):
    cfg = AzurePipelineConfig(code_dir=repo, model="hades-roots", gate_split="", **ARGS)
    job = dry_run(cfg, tmp_path, cron=WEEKLY)
    schedule = yaml.safe_load((tmp_path / "pipeline.schedule.yaml").read_text())

    assert schedule["trigger"] == {"type": "cron", "expression": "0 3 * * 1", "time_zone": "UTC"}
    assert schedule["name"] == "hades-retrain-hades-roots"  # one schedule per model: creating it again updates it
    assert schedule["create_job"] == "pipeline.yaml"  # the job beside it, by reference
    command = shlex.split(job["jobs"]["retrain"]["component"]["command"])
    assert command[:2] == ["hades-train", "pipeline"]
    assert "--schedule" in command  # the scheduled job runs even when the data was seen before
    assert command[command.index("--gate-split") + 1] == ""  # a flat gate folder
    assert job["tags"]["hades_scheduled"] == "true"


def test_the_specs_load_back_with_azure_ai_ml_as_the_same_job_and_schedule(repo: Path, tmp_path: Path):
    from azure.ai.ml import load_job
    from azure.ai.ml.entities import CronTrigger, JobSchedule, PipelineJob

    cfg = AzurePipelineConfig(code_dir=repo, environment="hades-train:3", pipeline_args=["--set", "lr=3e-4"], **ARGS)
    spec_out = Path(submit(cfg, dry_run=True, spec_out=tmp_path / "pipeline.yaml", cron=WEEKLY))
    expected = build_pipeline_job(cfg, context_dir=tmp_path / "again", scheduled=True)

    job = load_job(spec_out)
    assert isinstance(job, PipelineJob)  # the pipeline-job form `az ml job create -f` takes
    assert list(job.jobs) == ["retrain"]
    assert job.jobs["retrain"].command == expected.jobs["retrain"].command
    assert str(job.jobs["retrain"].environment).removeprefix("azureml:") == "hades-train:3"  # loaded without it
    assert job.inputs["new_data"].path == cfg.new_data_uri
    assert job.inputs["gate_data"].path == cfg.gate_data_uri

    schedule = load_schedule(schedule_spec_path(spec_out))  # the form `az ml schedule create -f` takes
    assert isinstance(schedule, JobSchedule) and isinstance(schedule.trigger, CronTrigger)
    assert schedule.trigger.expression == WEEKLY
    assert isinstance(schedule.create_job, PipelineJob)
    assert schedule.create_job.jobs["retrain"].command == expected.jobs["retrain"].command


def test_the_environment_is_the_one_azure_submit_builds_or_a_registered_one(repo: Path, tmp_path: Path):
    spec = dry_run(AzurePipelineConfig(code_dir=repo, **ARGS), tmp_path / "out")
    context = Path(spec["jobs"]["retrain"]["environment"]["build"]["path"])
    assert context == tmp_path / "out" / "environment"  # beside the spec, as for `azure submit`
    assert f"FROM {DEFAULT_BASE_IMAGE}\n" in (context / "Dockerfile").read_text()
    assert (context / "training" / "hades_training" / "retrain.py").is_file()

    spec = dry_run(AzurePipelineConfig(code_dir=repo, environment="hades-train@latest", **ARGS), tmp_path / "reg")
    assert spec["jobs"]["retrain"]["environment"] == "azureml:hades-train@latest"
    assert not (tmp_path / "reg" / "environment").exists()


def test_the_submitter_identity_can_read_the_data_and_the_store_instead(repo: Path, tmp_path: Path):
    spec = dry_run(AzurePipelineConfig(code_dir=repo, identity="user", **ARGS), tmp_path)
    assert spec["jobs"]["retrain"]["identity"] == {"type": "user_identity"}


def test_a_store_given_by_its_https_address_needs_no_account_url(repo: Path, tmp_path: Path):
    store = f"{ACCOUNT_URL}/models/hades"
    cfg = AzurePipelineConfig(code_dir=repo, **{**ARGS, "store": store, "store_account_url": None})
    step = dry_run(cfg, tmp_path)["jobs"]["retrain"]
    assert f"--store {store} " in step["component"]["command"]
    assert "AZURE_STORAGE_ACCOUNT_URL" not in step["environment_variables"]


@pytest.mark.parametrize(
    "leak",
    [
        {"store": f"{ACCOUNT_URL}/models?sv=2022-11-02&sr=c&sig=abcDEF123%3D"},
        {"store": "azure://models?sig=abcDEF123%3D"},
        {"pipeline_args": ["--drift-report", f"{ACCOUNT_URL}/drift/drift.json?sv=2022-11-02&sig=abcDEF123%3D"]},
        {"pipeline_args": ["--set", "note=AccountKey=c2VjcmV0a2V5"]},
    ],
)
def test_a_key_or_sas_token_in_the_store_url_or_the_pipeline_args_is_refused_without_echoing_it(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, leak: dict[str, Any]
):
    caplog.set_level(logging.DEBUG)
    cfg = AzurePipelineConfig(code_dir=repo, **{**ARGS, **leak})
    secret = "abcDEF123" if "store" in leak else leak["pipeline_args"][1]
    with pytest.raises(ValueError, match="must not carry credentials") as err:
        submit(cfg, dry_run=True, spec_out=tmp_path / "pipeline.yaml", cron=WEEKLY)
    assert secret not in str(err.value) and "abcDEF123" not in str(err.value)
    assert "abcDEF123" not in caplog.text and "c2VjcmV0a2V5" not in caplog.text
    assert not (tmp_path / "pipeline.yaml").exists() and not (tmp_path / "pipeline.schedule.yaml").exists()


def test_the_whole_spec_is_checked_for_secrets_from_the_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "plain-token-value")  # no pattern gives this one away
    cfg = AzurePipelineConfig(code_dir=repo, model="plain-token-value", **ARGS)
    with pytest.raises(ValueError, match="the value of AZURE_STORAGE_SAS_TOKEN") as err:
        pipeline_spec_yaml(build_pipeline_job(cfg, context_dir=tmp_path / "env"))
    assert "plain-token-value" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"store": "var/model-store"}, "the model store must be remote"),
        ({"store": "http://127.0.0.1:10000/devstoreaccount1/models"}, "got a http store"),
        ({"store_account_url": None}, "an azure:// store needs the storage account: give --store-account-url"),
        ({"store_account_url": "hadesmodels.blob.core.windows.net"}, "--store-account-url is the account's https"),
        ({"new_data_path": "azureml://datastores/x/paths/y"}, "--new-data-path is a folder inside the datastore"),
        ({"gate_data_path": "https://a.blob.core.windows.net/c"}, "--gate-data-path is a folder inside"),
        ({"pipeline_args": ["--out", "/tmp/w"]}, "the job sets --out"),
        ({"pipeline_args": ["--store=azure://other"]}, "the job sets --store"),
        ({"pipeline_args": ["--schedule"]}, "give --cron"),
        ({"pipeline_args": ["--sign", "keys/release.key"]}, "--sign is refused in an Azure ML job"),
        ({"identity": "service_principal"}, "identity must be one of managed, user"),
        ({"compute": " "}, "compute is empty; give it with --compute"),
    ],
)
def test_impossible_values_are_refused_with_what_to_give_instead(change: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        AzurePipelineConfig(**{**ARGS, **change})


@pytest.mark.parametrize(
    ("pipeline_args", "message"),
    [
        (["--iou-margn", "0.1"], "not ones `hades-train pipeline` takes: .*unrecognized arguments: --iou-margn"),
        (["--tip-margin", "much"], "invalid float value"),
        (["--set", "epochz=3"], "unknown config key 'epochz'"),
        (["--set", "experiment=sweeps"], "give --experiment-name sweeps"),
    ],
)
def test_pipeline_args_are_checked_as_the_pipeline_will_read_them_before_anything_is_written(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pipeline_args: list[str], message: str
):
    cfg = AzurePipelineConfig(code_dir=repo, pipeline_args=pipeline_args, **ARGS)
    with pytest.raises(ValueError, match=message):
        submit(cfg, dry_run=True, spec_out=tmp_path / "pipeline.yaml")
    assert not (tmp_path / "pipeline.yaml").exists()
    assert capsys.readouterr().err == ""  # argparse's usage text is not printed


@pytest.mark.parametrize(
    ("cron", "time_zone", "message"),
    [
        ("weekly", "UTC", "--cron takes five fields"),
        ("0 3 * * 1 2026", "UTC", "--cron takes five fields"),
        (WEEKLY, "Europe/Berlin", "time zone Azure ML knows, e.g. UTC or W. Europe Standard Time"),
    ],
)
def test_a_schedule_azure_ml_would_not_take_is_refused(
    repo: Path, tmp_path: Path, cron: str, time_zone: str, message: str
):
    with pytest.raises(ValueError, match=message):
        submit(AzurePipelineConfig(code_dir=repo, **ARGS), True, tmp_path / "pipeline.yaml", cron, time_zone)
    assert not (tmp_path / "pipeline.yaml").exists()


def test_a_schedule_takes_only_a_job_that_passes_schedule(repo: Path, tmp_path: Path):
    from azure.ai.ml.entities import CronTrigger

    cfg = AzurePipelineConfig(code_dir=repo, environment="hades-train:3", **ARGS)
    with pytest.raises(ValueError, match="must pass --schedule"):
        build_schedule(build_pipeline_job(cfg, tmp_path / "env"), WEEKLY)
    schedule = build_schedule(
        build_pipeline_job(cfg, tmp_path / "env", scheduled=True), WEEKLY, "W. Europe Standard Time"
    )
    assert isinstance(schedule.trigger, CronTrigger) and schedule.trigger.time_zone == "W. Europe Standard Time"


def test_submitting_without_workspace_coordinates_says_which_are_missing_and_how_to_give_them(
    repo: Path, tmp_path: Path
):
    cfg = AzurePipelineConfig(code_dir=repo, subscription_id="0000-sub", **ARGS)
    for cron in (None, WEEKLY):
        with pytest.raises(ValueError, match="workspace coordinates missing") as err:
            submit(cfg, dry_run=False, spec_out=tmp_path / "pipeline.yaml", cron=cron)
        assert "--resource-group (or AZURE_RESOURCE_GROUP)" in str(err.value)
        assert "--workspace (or AZUREML_WORKSPACE)" in str(err.value)
        assert "--subscription-id" not in str(err.value)
    assert not (tmp_path / "pipeline.yaml").exists()  # refused before anything was written or created


def test_the_cli_dry_run_writes_both_specs_with_the_pipeline_arguments_after_the_separator(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    spec_out = tmp_path / "azure" / "pipeline.yaml"
    rc = main([
        "azure", "pipeline", "--compute", "gpu-v100", "--datastore", "hadesdata",
        "--new-data-path", "plates/new", "--gate-data-path", "plates/gate", "--gate-split", "val",
        "--store", f"{ACCOUNT_URL}/models", "--model", "hades-roots", "--code-dir", str(repo),
        "--cron", WEEKLY, "--dry-run", "--spec-out", str(spec_out), "--", "--set", "epochs=3", "--min-items", "4",
    ])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert f"pipeline job spec: {spec_out}" in out
    assert f"schedule spec: {spec_out.parent / 'pipeline.schedule.yaml'}" in out

    spec = yaml.safe_load(spec_out.read_text())
    assert spec["jobs"]["retrain"]["component"]["command"] == (
        f"hades-train pipeline --store {ACCOUNT_URL}/models --model hades-roots --new-data ${{{{inputs.new_data}}}} "
        "--gate-data ${{inputs.gate_data}} --gate-split val --out ${{outputs.work}} --state-in-store --schedule "
        "--set epochs=3 "
        "--min-items 4"
    )
    assert spec["inputs"]["new_data"]["path"] == "azureml://datastores/hadesdata/paths/plates/new"
    assert spec["inputs"]["gate_data"]["path"] == "azureml://datastores/hadesdata/paths/plates/gate"
    assert spec["compute"] == "azureml:gpu-v100"
    assert yaml.safe_load((spec_out.parent / "pipeline.schedule.yaml").read_text())["trigger"]["expression"] == WEEKLY
    assert (spec_out.parent / "environment" / "Dockerfile").is_file()


def test_the_cli_without_a_workspace_tells_how_to_give_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    rc = main([
        "azure", "pipeline", "--compute", "gpu", "--new-data-path", "n", "--gate-data-path", "g",
        "--store", f"{ACCOUNT_URL}/models", "--code-dir", str(repo), "--spec-out", str(tmp_path / "p.yaml"),
    ])  # fmt: skip
    assert rc == 2
    assert "--subscription-id (or AZURE_SUBSCRIPTION_ID)" in caplog.text


def test_the_cli_requires_compute_data_folders_and_store(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_:
        main(["azure", "pipeline", "--dry-run"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert all(flag in err for flag in ("--compute", "--new-data-path", "--gate-data-path", "--store"))


def cli_args(repo: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "azure", "pipeline", "--compute", "gpu", "--new-data-path", "n", "--gate-data-path", "g",
        "--store", "azure://models", "--store-account-url", ACCOUNT_URL, "--code-dir", str(repo),
        "--environment", "hades-train:3", "--spec-out", str(tmp_path / "pipeline.yaml"), *extra,
    ]  # fmt: skip


def test_submit_sends_the_pipeline_job_to_the_workspace_from_the_environment(
    repo: Path, tmp_path: Path, fake_workspace: type[FakeMLClient], capsys: pytest.CaptureFixture[str]
):
    from azure.ai.ml.entities import PipelineJob

    assert main(cli_args(repo, tmp_path)) == 0
    made = fake_workspace.made
    assert isinstance(made["client"].pop("credential"), FakeCredential)
    assert made["client"] == {
        "subscription_id": "1111-2222",
        "resource_group_name": "rg-hades",
        "workspace_name": "mlw-hades",
    }
    assert isinstance(made["job"], PipelineJob)
    assert made["job"].jobs["retrain"].command.startswith("hades-train pipeline --store azure://models ")
    assert made["kwargs"] == {"experiment_name": "hades-perception"}
    assert "submitted: https://ml.azure.com/runs/calm_leaf_1" in capsys.readouterr().out
    assert "1111-2222" not in (tmp_path / "pipeline.yaml").read_text()  # the record of what was sent


def test_submit_with_cron_creates_the_schedule_and_no_job_now(
    repo: Path, tmp_path: Path, fake_workspace: type[FakeMLClient], capsys: pytest.CaptureFixture[str]
):
    from azure.ai.ml.entities import CronTrigger, JobSchedule, PipelineJob

    assert main(cli_args(repo, tmp_path, "--cron", WEEKLY)) == 0
    made = fake_workspace.made
    assert "job" not in made  # the schedule creates the jobs, from Monday on
    schedule = made["schedule"]
    assert isinstance(schedule, JobSchedule) and schedule.name == "hades-retrain-hades-seedlings"
    assert isinstance(schedule.trigger, CronTrigger) and schedule.trigger.expression == WEEKLY
    assert isinstance(schedule.create_job, PipelineJob)
    assert "--schedule" in shlex.split(schedule.create_job.jobs["retrain"].command)
    assert "schedule created: hades-retrain-hades-seedlings (0 3 * * 1, UTC)" in capsys.readouterr().out
    assert (tmp_path / "pipeline.schedule.yaml").is_file()  # the record of what was sent


def read_unit(path: Path) -> configparser.ConfigParser:
    """A systemd unit file, read as INI: keys keep their case, `%` is systemd's, not configparser's."""
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(path.read_text())
    return unit


def test_the_systemd_timer_starts_the_retraining_service_on_mondays_at_three():
    timer = read_unit(RETRAINING / "hades-retrain.timer")
    assert timer["Timer"]["OnCalendar"] == "Mon *-*-* 03:00:00"
    assert timer["Timer"]["Persistent"] == "true"  # a run missed while the machine was off starts at boot
    assert timer["Timer"]["Unit"] == "hades-retrain.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_systemd_service_runs_the_local_pipeline_with_schedule_from_the_checkout():
    service = read_unit(RETRAINING / "hades-retrain.service")["Service"]
    assert service["Type"] == "oneshot"
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[:2] == ["/bin/bash", "-c"]
    # What bash runs once systemd has turned `$$` into `$` and `%%` into `%`:
    script = exec_start[2].replace("$$", "$").replace("%%", "%")
    assert script.startswith("source scripts/env.sh && exec hades-train pipeline ")
    words = shlex.split(script)
    assert "--schedule" in words
    for flag in ("--new-data", "--gate-data", "--out"):
        assert flag in words
    assert "$(date -u +%Y-%m-%d)" in script  # a work folder per run; the state file beside them
    subprocess.run(["bash", "-n", "-c", script], check=True)  # it is valid shell
