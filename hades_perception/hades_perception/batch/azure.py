"""The batch as an Azure ML parallel job: the same per-plate work (worker.py) in an
Azure ML pipeline with one `parallel` step, for archives that already live in a
datastore. Azure ML splits the archive into mini-batches over `instances` nodes, each
running `processes_per_instance` processes of azure_entry.py.

`--dry-run` writes the job spec (YAML) and contacts nothing; submitting needs the
azure-ai-ml and azure-identity packages and the workspace in AZURE_SUBSCRIPTION_ID,
AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE (docs/azure.md). The environment named by
`environment` must have this package installed (the x86 container image does).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the project folder holding hades_perception/
ENTRY = "hades_perception/batch/azure_entry.py"


@dataclass(frozen=True)
class AzureBatch:
    compute: str
    input_path: str  # datastore paths, e.g. archives/exp74
    output_path: str
    model_path: str
    datastore: str = "workspaceblobstore"
    instances: int = 2
    processes_per_instance: int = 1
    mini_batch_size: int = 10
    threads: int = 1
    environment: str = "azureml:hades-perception@latest"
    experiment_name: str = "hades-batch"

    def uri(self, path: str) -> str:
        return f"azureml://datastores/{self.datastore}/paths/{path.strip('/')}"


def job_spec(b: AzureBatch, code_dir: Path) -> dict[str, Any]:
    """An Azure ML CLI v2 pipeline job with one parallel step."""
    for name in ("input_path", "output_path", "model_path"):
        value = getattr(b, name)
        if "://" in value or ".." in value.split("/"):
            raise ValueError(f"{name} {value!r}: expected a folder inside datastore {b.datastore}")
    return {
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
        "type": "pipeline",
        "display_name": f"hades batch {b.input_path}",
        "experiment_name": b.experiment_name,
        "jobs": {
            "predict": {
                "type": "parallel",
                "compute": f"azureml:{b.compute}",
                "inputs": {
                    "archive": {"type": "uri_folder", "path": b.uri(b.input_path), "mode": "ro_mount"},
                    "model": {"type": "uri_folder", "path": b.uri(b.model_path), "mode": "download"},
                },
                "outputs": {"results": {"type": "uri_folder", "path": b.uri(b.output_path), "mode": "rw_mount"}},
                "input_data": "${{inputs.archive}}",
                "mini_batch_size": str(b.mini_batch_size),
                "resources": {"instance_count": b.instances},
                "max_concurrency_per_instance": b.processes_per_instance,
                "mini_batch_error_threshold": -1,  # a failed plate is reported, never the job's end
                "error_threshold": -1,
                "retry_settings": {"max_retries": 2, "timeout": 1800},
                "logging_level": "INFO",
                "task": {
                    "type": "run_function",
                    "code": str(code_dir),
                    "entry_script": ENTRY,
                    "environment": b.environment,
                    "program_arguments": (
                        "--input ${{inputs.archive}} --model ${{inputs.model}} --out ${{outputs.results}} "
                        f"--threads {b.threads}"
                    ),
                    "append_row_to": "${{outputs.results}}/parallel_rows.csv",
                },
            }
        },
    }


def submit_parallel_job(b: AzureBatch, spec_out: Path, dry_run: bool) -> Path:
    """Write the spec to `spec_out`; submit it unless `dry_run`. Returns the spec's path."""
    spec_out.parent.mkdir(parents=True, exist_ok=True)
    code = os.path.relpath(PACKAGE_ROOT, spec_out.parent.resolve())
    spec_out.write_text(yaml.safe_dump(job_spec(b, Path(code)), sort_keys=False))
    log.info("Azure ML parallel job spec written to %s", spec_out)
    if dry_run:
        return spec_out
    try:
        from azure.ai.ml import MLClient, load_job
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise RuntimeError(f"submitting needs azure-ai-ml and azure-identity (pip install azure-ai-ml): {exc}") from exc
    env = {k: os.environ.get(k, "") for k in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise RuntimeError(f"the Azure ML workspace is not set: {', '.join(missing)} (docs/azure.md)")
    client = MLClient(
        DefaultAzureCredential(), env["AZURE_SUBSCRIPTION_ID"], env["AZURE_RESOURCE_GROUP"], env["AZUREML_WORKSPACE"]
    )
    job = client.jobs.create_or_update(load_job(spec_out))
    log.info("submitted %s: %s", job.name, getattr(job, "studio_url", ""))
    return spec_out
