"""`hades-train` runs as jobs: a client's {"kind", "args"} -> the command line, checked
against an allow-list per kind, and the MLflow run a finished run names.

The API process never imports training code (no torch in the server): a job is the
installed `hades-train` as a subprocess, with an argument list and no shell. The
client names what to run and on what; the server decides where and with which store:
- Only the arguments listed in KINDS, each of its type: paths, names (letters, digits,
  `._+-`), bounded numbers, flags, and `set` overrides (KEY=VALUE, short and plain).
- Paths are references, never a client's free path:
    served               the bundle this server serves
    dataset:ID[/SUB]     an uploaded dataset (POST /v1/datasets)
    job:ID[/SUB]         what a finished job made (its out/ folder: a batch's predict
                         JSONs, a run's checkpoints, an export's bundle, a drift.json)
    /an/absolute/path    inside one of the server's data dirs (--data-dir), e.g. a fixed gate set
  SUB may not climb (`..`), and the resolved path (symbolic links followed) must still
  lie under its base; it must exist.
- `--out` is always the job's own out/ folder (an export replaces it: --force); a
  pipeline job gets the followed
  model, the server's store (by the environment, so no SAS token shows in a process
  list) and a state file in the work dir.
- Azure ML: `azure_train` and `azure_pipeline` run `hades-train azure submit` and
  `hades-train azure pipeline`, which submit the same training or gated pipeline as
  an Azure ML job; the data are folders in a datastore (`data_path`: a relative path,
  never a URL or a climbing one), the workspace comes from the server's environment
  (AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE). They submit only
  on a server started with --azure-ml; `dry_run: true` writes the job's spec (YAML)
  into the job's out/ folder on any server, and contacts nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hades_perception.api.errors import ApiError
from hades_perception.api.jobs import LOG_FILE, OUT_DIR, Handle, JobError, run_subprocess

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
OVERRIDE = re.compile(r"^[a-z][a-z0-9_]{0,63}=[A-Za-z0-9._+\-,:\[\] ]{0,200}$")
REFERENCE = re.compile(r"^(dataset|job):([A-Za-z0-9][A-Za-z0-9-]{0,63})(?:/(.+))?$")
DATASTORE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,511}$")  # a folder inside a datastore
STORE_URL = re.compile(
    r"^(azure://[a-z0-9][a-z0-9-]{2,62}(/[A-Za-z0-9._/-]*)?|https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._/-]*)?)$"
)
# The hades-train subcommand of each Azure kind, and the file its spec goes to (in out/).
AZURE_KINDS = {
    "azure_train": (("azure", "submit"), "job.yaml"),
    "azure_pipeline": (("azure", "pipeline"), "pipeline.yaml"),
}
MAX_OVERRIDES = 32
# The MLflow run a log names: MLflow's own "View run ... at: .../runs/<id>", or our "mlflow_run_id ...".
RUN_ID = re.compile(r"(?:mlflow[ _]run[ _]id|/runs/)\W{0,4}([0-9a-f]{32})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Arg:
    name: str  # the JSON key; the option is --name-with-dashes
    type: str  # path, name, split, int, float, flag, overrides, datastore_path, store_url
    required: bool = False
    default: Any = None
    low: float | None = None
    high: float | None = None

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def _items(low: int = 1) -> Arg:
    return Arg("max_items", "int", low=low, high=1_000_000)


KINDS: dict[str, tuple[Arg, ...]] = {
    "train": (
        Arg("data", "path", required=True),
        Arg("split", "name"),
        Arg("val_data", "path"),
        Arg("val_split", "name"),
        Arg("config", "path"),
        Arg("set", "overrides"),
        Arg("resume", "path"),
        Arg("init", "path"),  # "served": fine-tune the served model (its bundle carries its weights)
    ),
    "evaluate": (
        Arg("model", "path", default="served"),
        Arg("data", "path", required=True),
        Arg("split", "name"),
        _items(),
        Arg("no_mlflow", "flag"),
    ),
    "export": (
        Arg("checkpoint", "path", required=True),
        Arg("data", "path", required=True),
        Arg("split", "name"),
        Arg("name", "name"),
        Arg("version", "name"),
        Arg("int8", "flag"),
        Arg("no_tensorrt", "flag"),
        _items(),
    ),
    "pipeline": (
        Arg("new_data", "path", required=True),
        Arg("gate_data", "path", required=True),
        Arg("gate_split", "split"),
        Arg("drift_report", "path"),
        Arg("schedule", "flag"),
        Arg("set", "overrides"),
        Arg("iou_margin", "float", low=0.0, high=1.0),
        Arg("tip_margin", "float", low=0.0, high=1.0),
        Arg("max_pixel_ece", "float", low=0.0, high=1.0),
        Arg("min_items", "int", low=1, high=1_000_000),
        Arg("dry_run", "flag"),
    ),
    "monitor": (
        Arg("reference", "path", default="served"),
        Arg("current", "path", required=True),
    ),
    "azure_train": (
        Arg("compute", "name", required=True),
        Arg("datastore", "name"),
        Arg("data_path", "datastore_path", required=True),
        Arg("config", "path", required=True),
        Arg("instance_count", "int", low=1, high=64),
        Arg("gpus_per_node", "int", low=0, high=16),
        Arg("display_name", "name"),
        Arg("experiment_name", "name"),
        Arg("set", "overrides"),  # to hades-train train, after --
        Arg("dry_run", "flag"),
    ),
    "azure_pipeline": (
        Arg("compute", "name", required=True),
        Arg("datastore", "name"),
        Arg("new_data_path", "datastore_path", required=True),
        Arg("gate_data_path", "datastore_path", required=True),
        Arg("gate_split", "split"),
        Arg("store", "store_url", required=True),
        Arg("store_account_url", "store_url"),
        Arg("model", "name", required=True),
        Arg("experiment_name", "name"),
        Arg("cron", "cron"),
        Arg("set", "overrides"),  # to hades-train pipeline, after --
        Arg("dry_run", "flag"),
    ),
}
CRON = re.compile(r"^[0-9*/,-]+( [0-9*/,-]+){4}$")


@dataclass(frozen=True)
class Places:
    """Where references point: the work dir's jobs and datasets, the data dirs, the served bundle."""

    jobs: Path
    datasets: Path
    data_dirs: tuple[Path, ...]
    served: Callable[[], Path]
    job_done: Callable[[str], bool | None]  # None: no such job


@dataclass(frozen=True)
class Plan:
    """A checked run: `hades-train KIND` with these options (and --out, added per job)."""

    kind: str
    options: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    passthrough: tuple[str, ...] = ()  # after `--`: the Azure job's own hades-train options

    @property
    def subcommand(self) -> tuple[str, ...]:
        return AZURE_KINDS[self.kind][0] if self.kind in AZURE_KINDS else (self.kind,)

    def argv(self, command: tuple[str, ...], out: Path) -> list[str]:
        if self.kind in AZURE_KINDS:
            rest = ["--", *self.passthrough] if self.passthrough else []
            spec = out / AZURE_KINDS[self.kind][1]
            return [*command, *self.subcommand, f"--spec-out={spec}", *self.options, *rest]
        return [*command, self.kind, f"--out={out}", *self.options]


def invalid(detail: str) -> ApiError:
    return ApiError(422, "invalid request", detail)


def _under(base: Path, sub: str | None, what: str) -> Path:
    if sub is None:
        return base
    parts = sub.split("/")
    if sub.startswith("/") or ".." in parts or "\\" in sub or "\x00" in sub:
        raise invalid(f"{what}: the path after the id may not climb out ('..', absolute, backslashes)")
    path = (base / sub).resolve()
    if not path.is_relative_to(base.resolve()):
        raise invalid(f"{what}: resolves outside its folder (a symbolic link?)")
    return path


def resolve_path(value: Any, places: Places, name: str) -> Path:
    """A reference (see the module docstring) -> an existing path; ApiError 422 otherwise."""
    what = f"args.{name} {value!r}"
    forms = "expected 'served', 'dataset:ID[/path]', 'job:ID[/path]' or an absolute path inside a data dir"
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise invalid(f"args.{name}: {forms}")
    m = REFERENCE.match(value)
    if value == "served":
        path = places.served()
    elif m is not None:
        kind, ref, sub = m.groups()
        if kind == "dataset":
            base = places.datasets / ref
            if not (base / "dataset.json").is_file():
                raise invalid(f"{what}: no dataset {ref!r} (GET /v1/datasets lists them)")
        else:
            done = places.job_done(ref)
            if done is None:
                raise invalid(f"{what}: no job {ref!r} (GET /v1/jobs lists them)")
            if not done:
                raise invalid(f"{what}: job {ref} has not finished well (done); use what a done job made")
            base = places.jobs / ref / OUT_DIR
        path = _under(base, sub, what)
    elif value.startswith("/"):
        path = Path(value).resolve()
        if not any(path.is_relative_to(d) for d in places.data_dirs):
            dirs = ", ".join(str(d) for d in places.data_dirs) or "none are configured (serve --data-dir DIR)"
            raise invalid(f"{what}: outside the server's data dirs ({dirs}); upload data with POST /v1/datasets")
    else:
        raise invalid(f"{what}: {forms}")
    if not path.exists():
        raise invalid(f"{what}: does not exist on the server")
    return path


def _value(arg: Arg, value: Any, places: Places) -> list[str]:
    """The option(s) for one argument, or ApiError 422 naming it."""
    what = f"args.{arg.name}"
    if arg.type == "path":
        return [f"{arg.option}={resolve_path(value, places, arg.name)}"]
    if arg.type in ("name", "split"):
        if arg.type == "split" and value == "":
            return [f"{arg.option}="]  # a flat folder
        if not isinstance(value, str) or not NAME.match(value):
            raise invalid(f"{what} {value!r}: expected a name of letters, digits and ._+- (at most 128)")
        return [f"{arg.option}={value}"]
    if arg.type in ("int", "float"):
        ok = isinstance(value, int) if arg.type == "int" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise invalid(f"{what} {value!r}: expected {'an integer' if arg.type == 'int' else 'a number'}")
        if (arg.low is not None and value < arg.low) or (arg.high is not None and value > arg.high):
            raise invalid(f"{what} {value}: expected {arg.low:g} to {arg.high:g}")
        return [f"{arg.option}={value}"]
    if arg.type == "flag":
        if not isinstance(value, bool):
            raise invalid(f"{what} {value!r}: expected true or false")
        return [arg.option] if value else []
    if arg.type == "overrides":
        if not isinstance(value, list) or len(value) > MAX_OVERRIDES:
            raise invalid(f"{what}: expected a list of at most {MAX_OVERRIDES} 'key=value' strings")
        bad = [v for v in value if not isinstance(v, str) or not OVERRIDE.match(v)]
        if bad:
            raise invalid(
                f"{what}: {bad[0]!r} is not key=value (a lower-case config key; a value of letters, digits, "
                "spaces and ._+-,:[] of at most 200)"
            )
        return [f"{arg.option}={v}" for v in value]
    if arg.type == "datastore_path":
        if not isinstance(value, str) or not DATASTORE_PATH.match(value) or ".." in value.split("/"):
            raise invalid(f"{what} {value!r}: expected a folder inside the datastore (letters, digits, ._/-; no ..)")
        return [f"{arg.option}={value}"]
    if arg.type == "store_url":
        if not isinstance(value, str) or not STORE_URL.match(value):
            raise invalid(
                f"{what} {value!r}: expected azure://CONTAINER[/PREFIX] or https://HOST[/PATH], "
                "without credentials (the job reaches the store with its identity)"
            )
        return [f"{arg.option}={value}"]
    if arg.type == "cron":
        if not isinstance(value, str) or not CRON.match(value):
            raise invalid(f"{what} {value!r}: expected five cron fields, e.g. '0 3 * * 1'")
        return [f"{arg.option}={value}"]
    raise AssertionError(arg.type)


def plan(
    kind: str, args: Mapping[str, Any], places: Places, store_url: str, model: str, state: Path, azure: bool = False
) -> Plan:
    """The checked command for a job request; ApiError 422 (409 for a pipeline without a
    store, or an Azure ML submission on a server without --azure-ml)."""
    spec = KINDS.get(kind)
    if spec is None:
        raise invalid(f"kind {kind!r}: expected one of {sorted(KINDS)}")
    if kind in AZURE_KINDS and not azure and not args.get("dry_run"):
        raise ApiError(
            409,
            "conflict",
            f"{kind} submits to Azure ML, which this server is not set up for: start it with --azure-ml and the "
            "workspace in AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE (docs/azure.md); "
            "dry_run=true writes the job's spec without submitting",
        )
    if kind == "pipeline" and not store_url:
        raise ApiError(
            409,
            "conflict",
            "a pipeline publishes its candidate to the model store this server follows, and this server "
            "follows none (start it with --store URL --model NAME)",
        )
    known = {a.name: a for a in spec}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise invalid(f"{kind} does not take {unknown}; it takes {sorted(known)} (and --out is the job's own folder)")
    options: list[str] = []
    passthrough: list[str] = []
    for arg in spec:
        value = args.get(arg.name, arg.default)
        if value is None:
            if arg.required:
                raise invalid(f"{kind} needs args.{arg.name} ({arg.type})")
            continue
        if kind in AZURE_KINDS and arg.name == "set":
            passthrough += _value(arg, value, places)
        else:
            options += _value(arg, value, places)
    env: tuple[tuple[str, str], ...] = ()
    if kind == "export":
        options.append("--force")  # the bundle goes into the job's out/, which exists (empty)
    if kind == "pipeline":
        options += [f"--model={model}", f"--state={state}"]
        env = (("HADES_MODEL_STORE", store_url),)
    return Plan(kind, tuple(options), env, tuple(passthrough))


def run(handle: Handle, plan: Plan, command: tuple[str, ...]) -> None:
    """A job's work: the subprocess, then its exit status and MLflow run on the record."""
    argv = plan.argv(command, handle.out)
    show = ["hades-train", *argv[len(command) :]]
    handle.update(command=show)
    env = {**os.environ, **dict(plan.env), "PYTHONUNBUFFERED": "1"}
    code = run_subprocess(handle, argv, env, show)
    handle.update(exit_code=code, mlflow_run_id=mlflow_run_id(plan.kind, handle.out, handle.folder / LOG_FILE))
    if code != 0 and not handle.cancelled.is_set():
        raise JobError(
            f"hades-train {' '.join(plan.subcommand)} exited with status {code}; the log's last lines say why"
        )


def mlflow_run_id(kind: str, out: Path, log_file: Path) -> str | None:
    """The MLflow run a finished job names: a pipeline's decision.json, an exported bundle's
    lineage (the training run it came from), else the last run id its log shows."""
    record = {"pipeline": out / "decision.json", "export": out / "manifest.json"}.get(kind)
    if record is not None:
        try:
            doc = json.loads(record.read_text())
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict):
            found = doc.get("mlflow_run_id") if kind == "pipeline" else (doc.get("lineage") or {}).get("mlflow_run_id")
            if isinstance(found, str) and found:
                return found
    try:
        with log_file.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 2**20))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    ids = RUN_ID.findall(text)
    return ids[-1] if ids else None
