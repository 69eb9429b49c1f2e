"""`hades-train azure submit`: run the training CLI as an Azure ML command job on a GPU cluster.

The job runs the same command as a workstation does::

    hades-train train --data ${{inputs.data}} --out ${{outputs.model}} --config CONFIG [EXTRA ...]

- ``inputs.data`` is a folder in a registered blob datastore, mounted read-only;
- ``outputs.model`` is a folder Azure ML creates in the workspace's default datastore;
- several GPUs (per node or across nodes) use Azure ML's PyTorch distribution, which starts one
  process per GPU with the torchrun variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
  ``MASTER_ADDR``, ``MASTER_PORT``) that the train command reads;
- MLflow needs no code here: inside a job Azure ML sets ``MLFLOW_TRACKING_URI`` (and the run id)
  to the workspace, and the train command honours it.

Environment. By default the job's image is built by Azure ML from a Docker build context written
next to the job spec: a public PyTorch CUDA image with this repository's ``hades_perception`` and
``training`` packages (and ``azureml-mlflow``) pip-installed on top. The packages are installed into
the image rather than at job start because the PyTorch distribution starts the command once per
GPU: a ``pip install`` in the command would race with itself. The build context is content-hashed,
so Azure ML rebuilds the image only when the packages or the base image change. A registered Azure
ML environment (``azureml:NAME:VERSION`` or ``NAME:VERSION``) is used as it is instead; it must
provide ``hades-train``.

Data access. The data datastore is meant to be identity-based (no key stored in the workspace);
by default the job reads it with the compute cluster's managed identity (the training identity),
or with the submitter's identity with ``--identity user``.

``--dry-run`` builds the same job object and writes the YAML that azure-ai-ml would send, without
creating a client or a credential. Credentials are never read here: the real submission uses
``DefaultAzureCredential`` (environment, managed identity, Azure CLI login, ...), which looks a
token up only when the client first calls Azure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from hades_training.config import EXPERIMENT
from hades_training.provenance import git_state

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import CommandJob, Environment

log = logging.getLogger(__name__)

#: Base image of the default environment: public, with a CUDA build of torch (>= 2.4, as the
#: training package requires) that the Dockerfile keeps while installing the repository on top.
DEFAULT_BASE_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
DEFAULT_DATASTORE = "workspaceblobstore"
DEFAULT_EXPERIMENT = EXPERIMENT
DEFAULT_SPEC_OUT = Path("var/azure/job.yaml")
#: Whose identity the job uses for identity-based datastores (no keys stored): the compute
#: cluster's managed identity (the training identity) or the identity of the person submitting.
IDENTITIES = ("managed", "user")
#: Shared memory for data-loader workers (Azure ML's default is 2g; Hades images are 12 MP).
DEFAULT_SHM_SIZE = "16g"

#: Where the workspace coordinates come from when their flags are not given.
WORKSPACE_ENV = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "workspace": "AZUREML_WORKSPACE",
}

#: Flags of `hades-train train` that the job sets itself.
_JOB_OWNED_TRAIN_FLAGS = ("--data", "--out", "--config")

#: Environment variables whose values must never reach a job spec or a log line.
SECRET_ENV_VARS = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
)
_SECRET_PATTERN = re.compile(
    r"AccountKey=|SharedAccessSignature=|DefaultEndpointsProtocol=|(?:^|[?&\s'\"])sig=[^&\s]+|PRIVATE KEY-----",
    re.IGNORECASE,
)

_CONTEXT_MARKER = ".hades-azure-environment"
_CONTEXT_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*_cache")
_DOCKERFILE = """\
# Written by `hades-train azure submit`; rewritten on every submit, do not edit.
# The job's environment: a PyTorch CUDA image with this repository's packages installed on top.
FROM {base_image}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY hades_perception /opt/hades/src/hades_perception
COPY training /opt/hades/src/training
# Keep the image's CUDA build of torch (if it has one) while resolving the other dependencies.
RUN (python -c "import torch; print('torch==' + torch.__version__)" 2>/dev/null || true) > /opt/hades/torch-pin.txt \\
 && python -m pip install -c /opt/hades/torch-pin.txt \\
        /opt/hades/src/hades_perception /opt/hades/src/training azureml-mlflow \\
 && hades-train --help > /dev/null
"""


@contextlib.contextmanager
def _quiet_sdk_notices() -> Iterator[None]:
    """Hold back azure-ai-ml's notices about its own experimental schema classes while it serialises."""
    notices = logging.getLogger("azure.ai.ml._utils._experimental")
    level = notices.level
    notices.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notices.setLevel(level)


def default_code_dir() -> Path:
    """The repository root when this module runs from a checkout, else the current folder."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "training" / "pyproject.toml").is_file() else Path.cwd()


def check_environment_settings(*, environment: str, experiment_name: str, identity: str) -> None:
    """Refuse values of the flags ``add_environment_arguments`` adds that no job runs with."""
    for name, flag, value in (
        ("experiment_name", "--experiment-name", experiment_name),
        ("environment", "--environment", environment),
    ):
        if not str(value).strip():
            raise ValueError(f"{name} is empty; give it with {flag}")
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {', '.join(IDENTITIES)} (got {identity!r}); give --identity")


@dataclass(frozen=True, kw_only=True)
class AzureWorkspace:
    """The Azure ML workspace to submit to; a dry run goes without it. Each coordinate's flag falls
    back to an environment variable (``WORKSPACE_ENV``, ``workspace_coordinates``)."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None

    def missing_workspace(self) -> list[str]:
        """How to give each workspace coordinate that is missing (empty when all are there)."""
        return [
            f"--{name.replace('_', '-')} (or {env})"
            for name, env in WORKSPACE_ENV.items()
            if not (getattr(self, name) or "").strip()
        ]

    def require_workspace(self) -> None:
        """Raise ValueError, saying how to give them, if workspace coordinates are missing."""
        missing = self.missing_workspace()
        if missing:
            raise ValueError(
                "Azure ML workspace coordinates missing: " + ", ".join(missing) + "; they are needed to submit "
                "(--dry-run writes the spec without them)"
            )


@dataclass(frozen=True, kw_only=True)
class AzureJobConfig(AzureWorkspace):
    """Everything that decides the Azure ML job. Workspace coordinates are needed only to submit."""

    compute: str
    """Name of the GPU compute cluster in the workspace."""
    data_path: str
    """Folder inside the datastore that holds the training data, e.g. ``hades/2024-05``."""
    config: str
    """Training config file, relative to ``code_dir`` (or absolute, inside it)."""
    datastore: str = DEFAULT_DATASTORE
    instance_count: int = 1
    gpus_per_node: int = 1
    environment: str = DEFAULT_BASE_IMAGE
    """``azureml:NAME:VERSION`` / ``NAME:VERSION`` (registered) or a Docker image to build on."""
    experiment_name: str = DEFAULT_EXPERIMENT
    display_name: str | None = None
    code_dir: Path = field(default_factory=default_code_dir)
    """Folder uploaded as the job's code snapshot (its .amlignore or .gitignore applies)."""
    extra_args: Sequence[str] = ()
    """Arguments appended to `hades-train train` as they are (kept as a tuple)."""
    shm_size: str = DEFAULT_SHM_SIZE
    identity: str = "managed"
    """``managed``: the cluster's managed identity reads the data; ``user``: the submitter's identity."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        object.__setattr__(self, "code_dir", Path(self.code_dir))
        for name in ("instance_count", "gpus_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{name} must be a whole number >= 1 (got {value!r}); give {flag} 1 or more")
        for name, flag in (
            ("compute", "--compute"),
            ("data_path", "--data-path"),
            ("config", "--config"),
            ("datastore", "--datastore"),
        ):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"{name} is empty; give it with {flag}")
        check_environment_settings(
            environment=self.environment, experiment_name=self.experiment_name, identity=self.identity
        )
        if "://" in self.data_path or self.data_path.startswith("azureml:"):
            raise ValueError(
                f"--data-path is a folder inside the datastore, not a URI (got {self.data_path!r}); "
                "give the datastore with --datastore and the folder with --data-path"
            )
        for arg in self.extra_args:
            if arg.split("=", 1)[0] in _JOB_OWNED_TRAIN_FLAGS:
                raise ValueError(
                    f"the job sets {arg.split('=', 1)[0]} of `hades-train train` itself; "
                    "use --data-path/--datastore and --config of `hades-train azure submit` instead"
                )

    @property
    def data_uri(self) -> str:
        """The data folder as Azure ML addresses it."""
        return f"azureml://datastores/{self.datastore}/paths/{self.data_path.strip('/')}"

    @property
    def process_count(self) -> int:
        return self.instance_count * self.gpus_per_node


def _config_in_snapshot(cfg: AzureJobConfig) -> str:
    """The config file's path inside the code snapshot, as the job sees it (POSIX, relative)."""
    code_dir = cfg.code_dir.resolve()
    if not code_dir.is_dir():
        raise ValueError(f"code folder {cfg.code_dir} does not exist; give the repository root with --code-dir")
    path = Path(cfg.config)
    path = (path if path.is_absolute() else code_dir / path).resolve()
    if not path.is_relative_to(code_dir):
        raise ValueError(
            f"config {cfg.config} is outside the code folder {code_dir}, so the job would not see it; "
            "put it inside the repository (or give --code-dir)"
        )
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist; give --config a file inside {code_dir}")
    return path.relative_to(code_dir).as_posix()


def _set_overrides(extra_args: Sequence[str]) -> list[str]:
    """The ``KEY=VALUE`` items of ``--set`` in the extra train arguments, in order."""
    items = []
    args = list(extra_args)
    for i, arg in enumerate(args):
        if arg == "--set" and i + 1 < len(args):
            items.append(args[i + 1])
        elif arg.startswith("--set="):
            items.append(arg.removeprefix("--set="))
    return items


def check_train_config(cfg: AzureJobConfig) -> None:
    """Load the training config (file + ``--set`` overrides) as the job will, before paying for GPUs.

    Inside Azure ML the platform points MLflow at the job's own run; MLflow refuses to start it
    under another experiment, so the config's ``experiment`` must be the job's experiment.
    """
    from hades_training.config import load_config

    config_file = cfg.code_dir.resolve() / _config_in_snapshot(cfg)
    experiment = load_config(config_file, _set_overrides(cfg.extra_args)).experiment
    if experiment != cfg.experiment_name:
        raise ValueError(
            f"the training config's experiment is {experiment!r} but the job's is {cfg.experiment_name!r}; "
            "MLflow in the job logs into the job's run, so they must match: give "
            f"--experiment-name {experiment} or `-- --set experiment={cfg.experiment_name}`"
        )


def train_command(cfg: AzureJobConfig) -> str:
    """The shell command the job runs (once per process), with Azure ML's input/output bindings."""
    words = [
        "hades-train",
        "train",
        "--data",
        "${{inputs.data}}",
        "--out",
        "${{outputs.model}}",
        "--config",
        shlex.quote(_config_in_snapshot(cfg)),
    ]
    words += [shlex.quote(arg) for arg in cfg.extra_args]
    return " ".join(words)


def git_tags(code_dir: Path) -> dict[str, str]:
    """``git_commit`` (and ``git_dirty``) of the code folder, or nothing outside a git checkout."""
    state = git_state(code_dir)
    if state is None:
        return {}
    commit, dirty = state
    tags = {"git_commit": commit}
    if dirty is not None:
        tags["git_dirty"] = "true" if dirty else "false"
    return tags


def is_registered_environment(environment: str) -> bool:
    """``azureml:...`` or ``NAME:VERSION`` / ``NAME@latest``; anything with a ``/`` is a Docker image."""
    env = environment.strip()
    return env.startswith("azureml:") or ("/" not in env and (":" in env or "@" in env))


def write_build_context(code_dir: Path, base_image: str, dest: Path) -> Path:
    """Write the Docker build context of the default environment into ``dest`` (replacing an older one)."""
    code_dir = Path(code_dir)
    for package in ("hades_perception", "training"):
        if not (code_dir / package / "pyproject.toml").is_file():
            raise ValueError(
                f"{code_dir} has no {package}/pyproject.toml to install into the job's image; give the "
                "repository root with --code-dir, or a registered environment with --environment NAME:VERSION"
            )
    dest = Path(dest)
    if dest.exists():
        if not (dest / _CONTEXT_MARKER).is_file() and any(dest.iterdir()):
            raise ValueError(f"{dest} exists and was not written by hades-train; move it or choose another --spec-out")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for package in ("hades_perception", "training"):
        shutil.copytree(code_dir / package, dest / package, ignore=_CONTEXT_IGNORE, symlinks=False)
    (dest / "Dockerfile").write_text(_DOCKERFILE.format(base_image=base_image.strip()))
    (dest / _CONTEXT_MARKER).write_text("written by hades-train azure submit\n")
    return dest


def _environment(environment: str, code_dir: Path, context_dir: Path) -> str | Environment:
    """The job's environment: a registered one by its ``azureml:`` name, or one built on the image
    ``environment`` from a build context written into ``context_dir``."""
    from azure.ai.ml.entities import BuildContext, Environment

    env = environment.strip()
    if is_registered_environment(env):
        return env if env.startswith("azureml:") else f"azureml:{env}"
    context = write_build_context(code_dir, env, context_dir)
    return Environment(
        build=BuildContext(path=str(context.resolve())),
        description=f"hades-train on {env}",
    )


def build_command_job(cfg: AzureJobConfig, context_dir: Path | None = None) -> CommandJob:
    """The Azure ML command job for ``cfg``. Offline: nothing here contacts Azure.

    ``context_dir`` is where the default environment's Docker build context is written
    (default: ``var/azure/environment``, beside the default spec); unused for a registered environment.
    """
    from azure.ai.ml import Input, Output, PyTorchDistribution
    from azure.ai.ml.constants import AssetTypes, InputOutputModes
    from azure.ai.ml.entities import (
        CommandJob,
        JobResourceConfiguration,
        ManagedIdentityConfiguration,
        UserIdentityConfiguration,
    )

    check_train_config(cfg)
    command = train_command(cfg)
    context_dir = Path(context_dir) if context_dir is not None else DEFAULT_SPEC_OUT.parent / "environment"
    tags = {
        **git_tags(cfg.code_dir),
        "hades_config": _config_in_snapshot(cfg),
        "hades_data": cfg.data_uri,
        "gpus": str(cfg.process_count),
    }
    return CommandJob(
        command=command,
        code=str(cfg.code_dir.resolve()),
        inputs={
            "data": Input(type=AssetTypes.URI_FOLDER, path=cfg.data_uri, mode=InputOutputModes.RO_MOUNT),
        },
        outputs={"model": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        environment=_environment(cfg.environment, cfg.code_dir, context_dir),
        environment_variables={
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_EXPERIMENT_NAME": cfg.experiment_name,
        },
        compute=cfg.compute,
        resources=JobResourceConfiguration(instance_count=cfg.instance_count, shm_size=cfg.shm_size),
        distribution=(
            PyTorchDistribution(process_count_per_instance=cfg.gpus_per_node) if cfg.process_count > 1 else None
        ),
        experiment_name=cfg.experiment_name,
        display_name=cfg.display_name,
        tags=tags,
        identity=ManagedIdentityConfiguration() if cfg.identity == "managed" else UserIdentityConfiguration(),
    )


def refuse_secrets(text: str) -> None:
    """Raise ValueError if ``text`` holds a key, SAS token, connection string or a secret env value."""
    found = [name for name in SECRET_ENV_VARS if len(os.environ.get(name, "")) >= 8 and os.environ[name] in text]
    if found or _SECRET_PATTERN.search(text):
        what = f"the value of {', '.join(found)}" if found else "a key, SAS token or connection string"
        raise ValueError(
            f"the job spec would contain {what}; jobs must not carry credentials (remove it from the "
            "extra train arguments; the job reaches its data through the datastore)"
        )


def sdk_yaml(entity: Any) -> str:
    """A job or schedule as azure-ai-ml serialises it (its ``dump``), without its notices; unchecked."""
    buf = io.StringIO()
    with _quiet_sdk_notices():
        entity.dump(buf)
    return buf.getvalue()


def job_spec_yaml(job: CommandJob) -> str:
    """The job as azure-ai-ml serialises it (what ``az ml job create -f`` accepts), checked for secrets."""
    text = sdk_yaml(job)
    refuse_secrets(text)
    return text


def _ml_client(ws: AzureWorkspace) -> MLClient:
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(
        credential=DefaultAzureCredential(),
        subscription_id=ws.subscription_id,
        resource_group_name=ws.resource_group,
        workspace_name=ws.workspace,
    )


@contextlib.contextmanager
def build_context_dir(spec_out: Path | None) -> Iterator[Path]:
    """Where the default environment's Docker build context goes: beside the spec when one is written,
    else in a temporary folder, removed on leaving."""
    with tempfile.TemporaryDirectory(prefix="hades-azure-") as tmp:
        yield (Path(spec_out).parent if spec_out is not None else Path(tmp)) / "environment"


def log_submitted(created: Any, what: str, logger: logging.Logger = log) -> str:
    """The studio URL of what azure-ai-ml created (empty if it gave none), logged with its name."""
    url = str(getattr(created, "studio_url", "") or "")
    logger.info("submitted %s %s: %s", what, getattr(created, "name", "?"), url)
    return url


def submit(cfg: AzureJobConfig, dry_run: bool, spec_out: Path | None = None) -> str:
    """Dry run: write the job spec to ``spec_out`` and return its path. Otherwise submit the job and
    return its Azure ML studio URL (and write the spec too, as a record, when ``spec_out`` is given)."""
    if dry_run:
        spec_out = Path(spec_out) if spec_out is not None else DEFAULT_SPEC_OUT
    else:
        cfg.require_workspace()
    with build_context_dir(spec_out) as context_dir:
        job = build_command_job(cfg, context_dir=context_dir)
        text = job_spec_yaml(job)
        if spec_out is not None:
            spec_out.parent.mkdir(parents=True, exist_ok=True)
            spec_out.write_text(text)
            log.info("job spec written to %s", spec_out)
        if dry_run:
            assert spec_out is not None
            return str(spec_out)
        log.info(
            "submitting to Azure ML workspace %s (resource group %s), compute %s, %d GPU(s)",
            cfg.workspace,
            cfg.resource_group,
            cfg.compute,
            cfg.process_count,
        )
        created = _ml_client(cfg).jobs.create_or_update(job, experiment_name=cfg.experiment_name)
    return log_submitted(created, "job")


class WorkspaceCoordinates(TypedDict):
    """``AzureWorkspace``'s fields as the command line gives them (``workspace_coordinates``)."""

    subscription_id: str | None
    resource_group: str | None
    workspace: str | None


def workspace_coordinates(args: argparse.Namespace) -> WorkspaceCoordinates:
    """The workspace coordinates of parsed arguments (``add_workspace_arguments``), each flag that is
    not given falling back to its environment variable (``WORKSPACE_ENV``)."""

    def coordinate(name: str) -> str | None:
        return getattr(args, name, None) or os.environ.get(WORKSPACE_ENV[name]) or None

    return WorkspaceCoordinates(
        subscription_id=coordinate("subscription_id"),
        resource_group=coordinate("resource_group"),
        workspace=coordinate("workspace"),
    )


class EnvironmentSettings(TypedDict):
    """The config fields of the flags ``add_environment_arguments`` adds (``environment_settings``)."""

    environment: str
    experiment_name: str
    code_dir: Path
    shm_size: str
    identity: str


def environment_settings(args: argparse.Namespace) -> EnvironmentSettings:
    """The values of the flags ``add_environment_arguments`` adds, by config field."""
    return EnvironmentSettings(
        environment=args.environment,
        experiment_name=args.experiment_name,
        code_dir=Path(args.code_dir),
        shm_size=args.shm_size,
        identity=args.identity,
    )


def config_from_args(args: argparse.Namespace) -> AzureJobConfig:
    """Build the job config from parsed `azure submit` arguments (workspace flags fall back to env vars)."""
    return AzureJobConfig(
        **workspace_coordinates(args),
        **environment_settings(args),
        compute=args.compute,
        datastore=args.datastore,
        data_path=args.data_path,
        instance_count=args.instance_count,
        gpus_per_node=args.gpus_per_node,
        display_name=args.display_name,
        config=args.config,
        extra_args=tuple(_strip_separator(args.train_args)),
    )


def _strip_separator(train_args: Sequence[str]) -> list[str]:
    args = list(train_args)
    return args[1:] if args[:1] == ["--"] else args


def _submit_command(args: argparse.Namespace) -> int:
    result = submit(config_from_args(args), dry_run=args.dry_run, spec_out=Path(args.spec_out))
    print(f"job spec: {result}" if args.dry_run else f"submitted: {result}")
    return 0


def add_workspace_arguments(parser: argparse.ArgumentParser) -> None:
    """The workspace flags, in a group of their own (``workspace_coordinates`` reads them)."""
    ws = parser.add_argument_group("workspace (needed to submit, not for --dry-run)")
    ws.add_argument("--subscription-id", default=None, help="Azure subscription id (default: $AZURE_SUBSCRIPTION_ID)")
    ws.add_argument("--resource-group", default=None, help="resource group (default: $AZURE_RESOURCE_GROUP)")
    ws.add_argument("--workspace", default=None, help="Azure ML workspace name (default: $AZUREML_WORKSPACE)")


def add_environment_arguments(
    group: argparse._ArgumentGroup,
    *,
    experiment_help: str = f"experiment / MLflow experiment (default {DEFAULT_EXPERIMENT})",
    identity_help: str = "identity that reads identity-based datastores: the cluster's managed identity (default) "
    "or yours",
    shm_size_help: str = f"shared memory per node (default {DEFAULT_SHM_SIZE})",
) -> None:
    """The flags of where and as whom a job runs, which `azure submit` and `azure pipeline` share:
    --environment, --experiment-name, --code-dir, --identity, --shm-size (help as `azure submit` words it;
    ``environment_settings`` reads them, ``check_environment_settings`` checks them)."""
    group.add_argument(
        "--environment",
        default=DEFAULT_BASE_IMAGE,
        help="registered Azure ML environment (azureml:NAME:VERSION or NAME:VERSION), used as it is, or a "
        f"Docker image to install the repository on (default {DEFAULT_BASE_IMAGE})",
    )
    group.add_argument("--experiment-name", default=DEFAULT_EXPERIMENT, help=experiment_help)
    group.add_argument(
        "--code-dir", default=str(default_code_dir()), help="folder uploaded as the code snapshot (the repository root)"
    )
    group.add_argument("--identity", choices=IDENTITIES, default="managed", help=identity_help)
    group.add_argument("--shm-size", default=DEFAULT_SHM_SIZE, help=shm_size_help)


def add_azure_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``azure submit`` to the `hades-train` subcommands (``subparsers`` from add_subparsers)."""
    azure = subparsers.add_parser("azure", help="run training as an Azure ML job on a GPU cluster")
    azure_sub = azure.add_subparsers(dest="azure_command", required=True)
    p = azure_sub.add_parser(
        "submit",
        help="submit `hades-train train` as an Azure ML command job (or write its spec with --dry-run)",
        description="Submit `hades-train train --data ${{inputs.data}} --out ${{outputs.model}} --config CONFIG "
        "[TRAIN_ARGS]` as an Azure ML command job. Arguments after `--` go to `hades-train train` as they are.",
    )
    add_workspace_arguments(p)
    job = p.add_argument_group("job")
    job.add_argument("--compute", required=True, help="GPU compute cluster name")
    job.add_argument(
        "--datastore", default=DEFAULT_DATASTORE, help=f"datastore holding the data (default {DEFAULT_DATASTORE})"
    )
    job.add_argument("--data-path", required=True, help="data folder inside the datastore, e.g. hades/2024-05")
    job.add_argument("--config", required=True, help="training config file inside --code-dir (relative path)")
    job.add_argument("--instance-count", type=int, default=1, help="number of nodes (default 1)")
    job.add_argument("--gpus-per-node", type=int, default=1, help="GPUs (processes) per node (default 1)")
    job.add_argument("--display-name", default=None, help="job display name in the studio")
    add_environment_arguments(job)
    p.add_argument("--dry-run", action="store_true", help="write the job spec (YAML) and stop; contacts nothing")
    p.add_argument(
        "--spec-out",
        default=str(DEFAULT_SPEC_OUT),
        help=f"where the job spec is written (default {DEFAULT_SPEC_OUT}); the environment's build context goes "
        "beside it",
    )
    p.add_argument("train_args", nargs="*", metavar="-- TRAIN_ARGS", help="passed to `hades-train train` as they are")
    p.set_defaults(func=_submit_command)

    from hades_training.azure_pipeline import add_pipeline_parser

    add_pipeline_parser(azure_sub)
    return p
