"""`hades-train azure pipeline`: the gated retraining pipeline as an Azure ML pipeline job, once or on a schedule.

The job runs the same command as a workstation does::

    hades-train pipeline --store STORE --model MODEL --new-data ${{inputs.new_data}}
        --gate-data ${{inputs.gate_data}} --gate-split SPLIT --out ${{outputs.work}} [PIPELINE_ARGS ...]

as the one step (``retrain``) of a pipeline job. One step, not one per stage (validate, train,
export, evaluate, gates, publish): the stages share the work folder (run, candidate, evaluations,
``decision.json``) and decide together whether the candidate is published, and the workstation and
the cloud run the same command, so the decision logic exists once, in ``hades_training.retrain``,
and is tested there. The pipeline job is the unit Azure ML schedules.

- ``inputs.new_data`` and ``inputs.gate_data`` are folders in a registered blob datastore, mounted
  read-only; ``outputs.work`` is a folder Azure ML creates in the workspace's default datastore;
- the store is remote (``azure://CONTAINER[/PREFIX]`` with ``--store-account-url``, or
  ``https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]``) and the job reaches it with its
  identity: the identity needs read and write access to the store's container (the pipeline
  publishes a passing candidate and promotes ``canary``, never ``production``);
- the step is marked non-deterministic, so Azure ML never reuses an earlier run's output instead
  of running it (a weekly run on unchanged data must still run);
- MLflow: inside the job Azure ML points MLflow at the workspace; the pipeline logs into the
  ``hades-perception`` experiment (training into the production config's), which must be the job's
  experiment, the default;
- the trigger's state (which data was already trained on) is kept in the model store
  (``--state-in-store``: ``<model>/pipeline/state.json``), since the compute's disk is gone after the
  run: a submitted job on data it saw before is skipped, as a local run would be (a scheduled one
  passes ``--schedule`` and goes ahead).

Environment: as `hades-train azure submit` (``hades_training.azure_job``): by default an image that
Azure ML builds from a Docker build context written beside the spec (a PyTorch CUDA image with this
repository installed), or a registered environment used as it is.

Schedule: with ``--cron`` (e.g. ``"0 3 * * 1"``, Mondays 03:00) the job passes ``--schedule`` to
`hades-train pipeline` (it runs even when the data was seen before) and an Azure ML schedule creates
it at those times. The schedule keeps the job as it was when the schedule was created (code
snapshot and environment included): run ``--cron`` again to update it (same model, same schedule).

``--dry-run`` builds the same objects and writes the YAML that azure-ai-ml would send (and, with
``--cron``, the schedule's YAML beside it, which ``az ml schedule create -f`` takes), without
creating a client or a credential. Credentials are never read here, and a spec carrying a key or a
SAS token is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from hades_training.azure_job import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_DATASTORE,
    DEFAULT_EXPERIMENT,
    DEFAULT_SHM_SIZE,
    AzureWorkspace,
    _environment,
    _ml_client,
    _strip_separator,
    add_environment_arguments,
    add_workspace_arguments,
    build_context_dir,
    check_environment_settings,
    default_code_dir,
    environment_settings,
    git_tags,
    log_submitted,
    refuse_secrets,
    sdk_yaml,
    workspace_coordinates,
)

if TYPE_CHECKING:
    from azure.ai.ml.entities import JobSchedule, PipelineJob

log = logging.getLogger(__name__)

DEFAULT_MODEL = "hades-seedlings"
DEFAULT_GATE_SPLIT = "test"
DEFAULT_SPEC_OUT = Path("var/azure/pipeline.yaml")
DEFAULT_TIME_ZONE = "UTC"
#: The name of the pipeline's single step.
STEP = "retrain"

#: Flags of `hades-train pipeline` that the job sets itself, and how to give them instead.
_JOB_OWNED_PIPELINE_FLAGS = {
    "--store": "--store",
    "--model": "--model",
    "--new-data": "--new-data-path/--datastore",
    "--gate-data": "--gate-data-path/--datastore",
    "--gate-split": "--gate-split",
    "--out": "nothing (the job's work folder is its output)",
    "--schedule": "--cron (a scheduled job passes --schedule)",
    "--state": "nothing (the job keeps the trigger's state in the model store: --state-in-store)",
    "--state-in-store": "nothing (the job sets it)",
}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/\-?LW#]+$")
_SCHEDULE_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, kw_only=True)
class AzurePipelineConfig(AzureWorkspace):
    """Everything that decides the Azure ML pipeline job. Workspace coordinates are needed only to submit."""

    compute: str
    """Name of the GPU compute cluster in the workspace."""
    new_data_path: str
    """Folder inside the datastore with the new labelled data, e.g. ``hades/labelled/2026-12``."""
    gate_data_path: str
    """Folder inside the datastore with the fixed gate set, e.g. ``hades/gate-set``."""
    store: str
    """The model store's URL, without credentials: ``azure://CONTAINER[/PREFIX]`` or ``https://...``."""
    model: str = DEFAULT_MODEL
    gate_split: str = DEFAULT_GATE_SPLIT
    """Split of the gate set (``""`` for a flat folder)."""
    datastore: str = DEFAULT_DATASTORE
    store_account_url: str | None = None
    """``https://ACCOUNT.blob.core.windows.net`` for an ``azure://`` store (the job's ``AZURE_STORAGE_ACCOUNT_URL``)."""
    pipeline_args: Sequence[str] = ()
    """Arguments appended to `hades-train pipeline` as they are, e.g. ``--set epochs=20`` (kept as a tuple)."""
    environment: str = DEFAULT_BASE_IMAGE
    """``azureml:NAME:VERSION`` / ``NAME:VERSION`` (registered) or a Docker image to build on."""
    experiment_name: str = DEFAULT_EXPERIMENT
    code_dir: Path = field(default_factory=default_code_dir)
    """Folder uploaded as the job's code snapshot, and whose packages the default environment installs."""
    shm_size: str = DEFAULT_SHM_SIZE
    identity: str = "managed"
    """``managed``: the cluster's managed identity reads the data; ``user``: the submitter's identity."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pipeline_args", tuple(self.pipeline_args))
        object.__setattr__(self, "code_dir", Path(self.code_dir))
        for name, flag in (
            ("compute", "--compute"),
            ("new_data_path", "--new-data-path"),
            ("gate_data_path", "--gate-data-path"),
            ("store", "--store"),
            ("model", "--model"),
            ("datastore", "--datastore"),
        ):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"{name} is empty; give it with {flag}")
        check_environment_settings(
            environment=self.environment, experiment_name=self.experiment_name, identity=self.identity
        )
        for name in ("new_data_path", "gate_data_path"):
            value = getattr(self, name)
            if "://" in value or value.startswith("azureml:"):
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{flag} is a folder inside the datastore, not a URI (got {value!r}); "
                    f"give the datastore with --datastore and the folder with {flag}"
                )
        # Messages name the store's scheme only: the URL itself may carry a token (refused later, unechoed).
        scheme = urlsplit(self.store).scheme
        if scheme not in ("azure", "https"):
            raise ValueError(
                f"the job runs in Azure, so the model store must be remote: azure://CONTAINER[/PREFIX] or "
                f"https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX] (got a {scheme or 'local'} store)"
            )
        if scheme == "azure" and not (self.store_account_url or "").strip():
            raise ValueError(
                "an azure:// store needs the storage account: give --store-account-url "
                "https://ACCOUNT.blob.core.windows.net (the job reaches it with its identity), or give the "
                "store as https://ACCOUNT.blob.core.windows.net/CONTAINER"
            )
        if self.store_account_url and urlsplit(self.store_account_url).scheme != "https":
            raise ValueError(
                "--store-account-url is the account's https:// address, e.g. https://ACCOUNT.blob.core.windows.net"
            )
        for arg in self.pipeline_args:
            flag = arg.split("=", 1)[0]
            if flag in _JOB_OWNED_PIPELINE_FLAGS:
                raise ValueError(
                    f"the job sets {flag} of `hades-train pipeline` itself; give "
                    f"{_JOB_OWNED_PIPELINE_FLAGS[flag]} of `hades-train azure pipeline` instead"
                )
            if flag == "--sign":
                raise ValueError(
                    "--sign is refused in an Azure ML job: the private signing key would have to travel in the "
                    "code snapshot or the image; keep signing keys on the machines that hold them"
                )

    def uri(self, path: str) -> str:
        """A folder of the datastore as Azure ML addresses it."""
        return f"azureml://datastores/{self.datastore}/paths/{path.strip('/')}"

    @property
    def new_data_uri(self) -> str:
        return self.uri(self.new_data_path)

    @property
    def gate_data_uri(self) -> str:
        return self.uri(self.gate_data_path)


def check_pipeline_args(cfg: AzurePipelineConfig) -> None:
    """Parse the extra arguments as `hades-train pipeline` will (and its ``--set`` items as training
    will), so that a typo fails here rather than after an image build and a queue for GPUs."""
    from hades_training.cli import build_parser
    from hades_training.config import load_config

    refuse_secrets(" ".join(cfg.pipeline_args))  # before any message could echo them
    argv = ["pipeline", "--store", "S", "--new-data", "N", "--gate-data", "G", "--out", "O", *cfg.pipeline_args]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            parsed = build_parser().parse_args(argv)
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1:] or ["invalid arguments"]
        raise ValueError(
            f"the pipeline arguments after `--` are not ones `hades-train pipeline` takes: {message[0]}"
        ) from None
    overrides = load_config(None, parsed.set)
    sets_experiment = any(item.partition("=")[0].strip() == "experiment" for item in parsed.set)
    if sets_experiment and overrides.experiment != cfg.experiment_name:
        raise ValueError(
            f"--set experiment={overrides.experiment} but the job's experiment is {cfg.experiment_name!r}; "
            "MLflow in the job logs into the job's run, so they must match: give "
            f"--experiment-name {overrides.experiment}"
        )


def pipeline_command(cfg: AzurePipelineConfig, scheduled: bool = False) -> str:
    """The shell command of the ``retrain`` step, with Azure ML's input/output bindings."""
    words = [
        "hades-train",
        "pipeline",
        "--store",
        shlex.quote(cfg.store),
        "--model",
        shlex.quote(cfg.model),
        "--new-data",
        "${{inputs.new_data}}",
        "--gate-data",
        "${{inputs.gate_data}}",
        "--gate-split",
        shlex.quote(cfg.gate_split),
        "--out",
        "${{outputs.work}}",
        "--state-in-store",
    ]
    if scheduled:
        words.append("--schedule")
    words += [shlex.quote(arg) for arg in cfg.pipeline_args]
    return " ".join(words)


def build_pipeline_job(
    cfg: AzurePipelineConfig, context_dir: Path | None = None, scheduled: bool = False
) -> PipelineJob:
    """The Azure ML pipeline job for ``cfg``: one command step, ``retrain``. Offline: nothing here contacts Azure.

    ``scheduled``: the job a schedule creates, which passes ``--schedule`` (see ``build_schedule``).
    ``context_dir`` is where the default environment's Docker build context is written
    (default: ``var/azure/environment``, beside the default spec); unused for a registered environment.
    """
    from azure.ai.ml import Input, Output, command, dsl
    from azure.ai.ml.constants import AssetTypes, InputOutputModes
    from azure.ai.ml.entities import ManagedIdentityConfiguration, UserIdentityConfiguration

    check_pipeline_args(cfg)
    context_dir = Path(context_dir) if context_dir is not None else DEFAULT_SPEC_OUT.parent / "environment"
    env_vars = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    if cfg.store_account_url:
        env_vars["AZURE_STORAGE_ACCOUNT_URL"] = cfg.store_account_url.rstrip("/")
    step = command(
        name=STEP,
        display_name=f"hades-train pipeline {cfg.model}",
        command=pipeline_command(cfg, scheduled),
        code=str(cfg.code_dir.resolve()),
        inputs={
            "new_data": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT),
            "gate_data": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT),
        },
        outputs={"work": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        environment=_environment(cfg.environment, cfg.code_dir, context_dir),
        environment_variables=env_vars,
        compute=cfg.compute,
        shm_size=cfg.shm_size,
        identity=ManagedIdentityConfiguration() if cfg.identity == "managed" else UserIdentityConfiguration(),
        is_deterministic=False,  # never reuse an earlier run's output: every run trains and decides anew
    )

    def retraining(new_data, gate_data):  # azure-ai-ml reads annotations as input types: none here
        retrain = step(new_data=new_data, gate_data=gate_data)  # the node is named after this variable
        return {"work": retrain.outputs["work"]}

    job = dsl.pipeline(
        retraining,
        name="hades_retraining",
        display_name=f"retrain {cfg.model}" + (" (scheduled)" if scheduled else ""),
        description="gated retraining: new data -> train, evaluate, gates -> canary (never production)",
        compute=cfg.compute,
    )(
        new_data=Input(type=AssetTypes.URI_FOLDER, path=cfg.new_data_uri, mode=InputOutputModes.RO_MOUNT),
        gate_data=Input(type=AssetTypes.URI_FOLDER, path=cfg.gate_data_uri, mode=InputOutputModes.RO_MOUNT),
    )
    work: Any = job.outputs["work"]  # a PipelineOutput, whatever the annotation says
    work.mode = InputOutputModes.RW_MOUNT
    job.experiment_name = cfg.experiment_name
    job.tags = {
        **git_tags(cfg.code_dir),
        "hades_model": cfg.model,
        "hades_store": cfg.store,
        "hades_new_data": cfg.new_data_uri,
        "hades_gate_data": cfg.gate_data_uri,
        "hades_scheduled": "true" if scheduled else "false",
    }
    return job


def schedule_name(model: str) -> str:
    """The schedule's name for a model: one weekly retraining per model (creating it again updates it)."""
    return "hades-retrain-" + _SCHEDULE_NAME_BAD.sub("-", model).strip("-")


def _check_cron(cron: str, time_zone: str) -> None:
    from azure.ai.ml.constants import TimeZone

    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"--cron takes five fields, minute hour day-of-month month day-of-week (got {cron!r}); "
            'e.g. "0 3 * * 1" for Mondays at 03:00'
        )
    zones = {zone.value for zone in TimeZone}
    if time_zone not in zones:
        raise ValueError(
            f"--time-zone must be a time zone Azure ML knows, e.g. UTC or W. Europe Standard Time (got {time_zone!r})"
        )


def build_schedule(
    job: PipelineJob, cron: str, time_zone: str = DEFAULT_TIME_ZONE, name: str | None = None
) -> JobSchedule:
    """An Azure ML schedule that creates ``job`` at the times of ``cron`` (in ``time_zone``).

    ``job`` must be built with ``scheduled=True``: a scheduled run passes ``--schedule`` to
    `hades-train pipeline`, so it goes ahead even when the data was seen before.
    """
    from azure.ai.ml.entities import CronTrigger, JobSchedule

    _check_cron(cron, time_zone)
    if "--schedule" not in shlex.split(job.jobs[STEP].command):
        raise ValueError(
            "a scheduled job must pass --schedule to `hades-train pipeline`: "
            "build it with build_pipeline_job(cfg, scheduled=True)"
        )
    model = (job.tags or {}).get("hades_model", DEFAULT_MODEL)
    return JobSchedule(
        name=name or schedule_name(model),
        display_name=f"retrain {model} ({cron}, {time_zone})",
        description=f"hades-train pipeline --schedule for {model} at cron {cron!r} ({time_zone})",
        trigger=CronTrigger(expression=cron, time_zone=time_zone),
        create_job=job,
        tags={k: v for k, v in (job.tags or {}).items() if k != "hades_scheduled"},
    )


def _checked(text: str) -> str:
    try:
        refuse_secrets(text)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; the job reaches the store with its identity: give the store without a token "
            "(azure://CONTAINER with --store-account-url, or https://ACCOUNT.blob.core.windows.net/CONTAINER)"
        ) from None
    return text


def pipeline_spec_yaml(job: PipelineJob) -> str:
    """The pipeline job as azure-ai-ml serialises it (what ``az ml job create -f`` accepts), checked for secrets."""
    return _checked(sdk_yaml(job))


def schedule_spec_yaml(schedule: JobSchedule, job_spec: str) -> str:
    """The schedule as azure-ai-ml serialises it, checked for secrets, with its job given as the file
    ``job_spec`` (relative to the schedule's file): azure-ai-ml dumps the job inline, but loads (and
    ``az ml schedule create -f`` takes) a pipeline job in a schedule only by reference."""
    spec = yaml.safe_load(_checked(sdk_yaml(schedule)))
    spec["create_job"] = job_spec
    return _checked(yaml.safe_dump(spec, sort_keys=False))


def schedule_spec_path(spec_out: Path) -> Path:
    """Where the schedule's YAML goes: beside the job spec, ``NAME.schedule.yaml``."""
    spec_out = Path(spec_out)
    return spec_out.with_name(spec_out.stem + ".schedule.yaml")


def submit(
    cfg: AzurePipelineConfig,
    dry_run: bool,
    spec_out: Path | None = None,
    cron: str | None = None,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> str:
    """Dry run: write the pipeline job spec to ``spec_out`` (with ``cron``, the scheduled job, and the
    schedule beside it, see ``schedule_spec_path``) and return the job spec's path.

    Otherwise submit the job once and return its Azure ML studio URL, or, with ``cron``, create (or
    update) the schedule and return its name; the specs are written too, as a record, when
    ``spec_out`` is given.
    """
    if dry_run:
        spec_out = Path(spec_out) if spec_out is not None else DEFAULT_SPEC_OUT
    else:
        cfg.require_workspace()
    if cron is not None:
        _check_cron(cron, time_zone)
    with build_context_dir(spec_out) as context_dir:
        job = build_pipeline_job(cfg, context_dir=context_dir, scheduled=cron is not None)
        text = pipeline_spec_yaml(job)
        schedule = build_schedule(job, cron, time_zone) if cron is not None else None
        schedule_text = (
            schedule_spec_yaml(schedule, Path(spec_out).name if spec_out is not None else "pipeline.yaml")
            if schedule is not None
            else None
        )
        if spec_out is not None:
            spec_out = Path(spec_out)
            spec_out.parent.mkdir(parents=True, exist_ok=True)
            spec_out.write_text(text)
            log.info("pipeline job spec written to %s", spec_out)
            if schedule_text is not None:
                schedule_spec_path(spec_out).write_text(schedule_text)
                log.info("schedule spec written to %s", schedule_spec_path(spec_out))
        if dry_run:
            assert spec_out is not None
            return str(spec_out)
        client = _ml_client(cfg)
        if schedule is not None:
            log.info(
                "creating schedule %s in Azure ML workspace %s (resource group %s): cron %r %s, compute %s",
                schedule.name,
                cfg.workspace,
                cfg.resource_group,
                cron,
                time_zone,
                cfg.compute,
            )
            created = client.schedules.begin_create_or_update(schedule).result()
            name = str(getattr(created, "name", "") or schedule.name)
            log.info("schedule %s created: cron %r %s", name, cron, time_zone)
            return name
        log.info(
            "submitting to Azure ML workspace %s (resource group %s), compute %s",
            cfg.workspace,
            cfg.resource_group,
            cfg.compute,
        )
        submitted = client.jobs.create_or_update(job, experiment_name=cfg.experiment_name)
    return log_submitted(submitted, "pipeline job", log)


def config_from_args(args: argparse.Namespace) -> AzurePipelineConfig:
    """Build the pipeline config from parsed `azure pipeline` arguments (workspace flags fall back to env vars)."""
    return AzurePipelineConfig(
        **workspace_coordinates(args),
        **environment_settings(args),
        compute=args.compute,
        datastore=args.datastore,
        new_data_path=args.new_data_path,
        gate_data_path=args.gate_data_path,
        gate_split=args.gate_split,
        store=args.store,
        store_account_url=args.store_account_url,
        model=args.model,
        pipeline_args=tuple(_strip_separator(args.pipeline_args)),
    )


def _pipeline_command(args: argparse.Namespace) -> int:
    spec_out = Path(args.spec_out)
    result = submit(
        config_from_args(args), dry_run=args.dry_run, spec_out=spec_out, cron=args.cron, time_zone=args.time_zone
    )
    if args.dry_run:
        print(f"pipeline job spec: {result}")
        if args.cron:
            print(f"schedule spec: {schedule_spec_path(spec_out)}")
    elif args.cron:
        print(f"schedule created: {result} ({args.cron}, {args.time_zone})")
    else:
        print(f"submitted: {result}")
    return 0


def add_pipeline_parser(azure_sub: Any) -> argparse.ArgumentParser:
    """Add ``azure pipeline`` to the ``hades-train azure`` subcommands (``azure_sub`` from add_subparsers)."""
    p = azure_sub.add_parser(
        "pipeline",
        help="run `hades-train pipeline` (gated retraining) as an Azure ML pipeline job, once or with --cron on a "
        "schedule (or write its spec with --dry-run)",
        description="Submit `hades-train pipeline --store STORE --model MODEL --new-data ${{inputs.new_data}} "
        "--gate-data ${{inputs.gate_data}} --gate-split SPLIT --out ${{outputs.work}} [PIPELINE_ARGS]` as an Azure "
        "ML pipeline job with one step; with --cron, create a schedule that runs it with --schedule. Arguments "
        "after `--` go to `hades-train pipeline` as they are.",
    )
    add_workspace_arguments(p)
    job = p.add_argument_group("job")
    job.add_argument("--compute", required=True, help="GPU compute cluster name")
    job.add_argument(
        "--datastore",
        default=DEFAULT_DATASTORE,
        help=f"datastore holding both data folders (default {DEFAULT_DATASTORE})",
    )
    job.add_argument("--new-data-path", required=True, help="new labelled data: a folder inside the datastore")
    job.add_argument("--gate-data-path", required=True, help="the fixed gate set: a folder inside the datastore")
    job.add_argument(
        "--gate-split", default=DEFAULT_GATE_SPLIT, help="split of the gate set (default test; '' for a flat folder)"
    )
    job.add_argument(
        "--store", required=True, help="model store URL without credentials: azure://CONTAINER[/PREFIX] or https://..."
    )
    job.add_argument(
        "--store-account-url",
        default=None,
        help="https://ACCOUNT.blob.core.windows.net, needed with an azure:// store (the job reaches it with its "
        "identity)",
    )
    job.add_argument("--model", default=DEFAULT_MODEL, help=f"model name in the store (default {DEFAULT_MODEL})")
    add_environment_arguments(
        job,
        experiment_help=f"experiment / MLflow experiment (default {DEFAULT_EXPERIMENT}, the one the pipeline logs to)",
        identity_help="identity that reads the data and the store: the cluster's managed identity (default) or yours",
        shm_size_help=f"shared memory of the step (default {DEFAULT_SHM_SIZE})",
    )
    sched = p.add_argument_group("schedule")
    sched.add_argument(
        "--cron",
        default=None,
        help='create (or update) a schedule instead of one job, e.g. "0 3 * * 1" (Mondays 03:00); its runs pass '
        "--schedule",
    )
    sched.add_argument(
        "--time-zone",
        default=DEFAULT_TIME_ZONE,
        help=f"time zone of --cron, as Azure ML names it (default {DEFAULT_TIME_ZONE})",
    )
    p.add_argument("--dry-run", action="store_true", help="write the spec(s) (YAML) and stop; contacts nothing")
    p.add_argument(
        "--spec-out",
        default=str(DEFAULT_SPEC_OUT),
        help=f"where the pipeline job spec is written (default {DEFAULT_SPEC_OUT}); with --cron the schedule goes "
        "beside it (NAME.schedule.yaml), and the environment's build context too",
    )
    p.add_argument(
        "pipeline_args", nargs="*", metavar="-- PIPELINE_ARGS", help="passed to `hades-train pipeline` as they are"
    )
    p.set_defaults(func=_pipeline_command)
    return p
