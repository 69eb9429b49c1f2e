"""POST /v1/jobs runs `hades-train` as a subprocess of the server: only the arguments its
kind allows, paths only as references the server resolves (the served bundle, an
uploaded dataset, what a finished job made, a data dir), and its --out always the job's
own folder. A job has a status, an exit status, a log tail, the MLflow run it names,
and can be cancelled. The job store behind it keeps a bounded number of jobs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hades_perception.api.errors import ApiError
from hades_perception.api.jobs import CANCELLED, DONE, FAILED, RUNNING, Handle, JobError, Jobs
from hades_perception.api.train_jobs import Places, mlflow_run_id, plan
from tests.api.conftest import PLATES, ROS_TEST_DATA, TINY, Server
from tests.api.zips import folder_files, zip_of


def start(server: Server, key: str, kind: str, **args: Any) -> str:
    r = server.request("POST", "/v1/jobs", key, json_body={"kind": kind, "args": args})
    assert r.status == 202, r
    job: str = r.json()["job"]
    return job


def refused(server: Server, kind: str, status: int, *words: str, **args: Any) -> None:
    r = server.request("POST", "/v1/jobs", server.key("train"), json_body={"kind": kind, "args": args})
    assert r.status == status, r
    for word in words:
        assert word in r.json()["detail"], r.json()


@pytest.fixture(scope="module")
def dataset(jobs_server: Server) -> str:
    """The ROS tests' two plates, uploaded: a Hades folder without splits."""
    archive = zip_of(folder_files(ROS_TEST_DATA / "plates"))
    r = jobs_server.post_files("/v1/datasets", jobs_server.key("train"), {"archive": ("p.zip", archive, "x")})
    assert r.status == 201, r
    name: str = r.json()["dataset"]
    return name


@pytest.fixture(scope="module")
def batch(jobs_server: Server) -> str:
    """A done batch of both plates: a folder of predict JSONs (job:<id>)."""
    key = jobs_server.key("predict")
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in PLATES]
    job: str = jobs_server.post_files("/v1/predict/batch", key, files).json()["job"]
    assert jobs_server.wait_job(job, key)["status"] == DONE
    return job


# --- hades-train runs --------------------------------------------------------------------------
def test_a_monitor_job_judges_a_batch_s_predictions_against_the_served_bundle(jobs_server: Server, batch: str):
    key = jobs_server.key("train", "read")
    job = jobs_server.wait_job(start(jobs_server, key, "monitor", current=f"job:{batch}"), key)
    assert job["status"] == DONE and job["exit_code"] == 0, job
    assert job["command"][:2] == ["hades-train", "monitor"] and job["command"][2].startswith("--out=")
    assert {"drift.json", "drift.html"} <= set(job["outputs"])
    lines = jobs_server.request("GET", f"/v1/jobs/{job['job']}/log?tail=5", key).json()["lines"]
    assert any("over 2 frames" in line for line in lines), lines
    reports = jobs_server.request("GET", "/v1/monitoring/reports", key).json()["reports"]
    mine = next(r for r in reports if r["job"] == job["job"])
    assert mine["report"]["frames"] == 2 and mine["report"]["model"]["version"] == "0.0.1-test"
    assert mine["args"] == {"current": f"job:{batch}"} and "current" not in mine["report"]


def test_an_evaluate_job_scores_the_served_model_on_an_uploaded_dataset(jobs_server: Server, dataset: str):
    key = jobs_server.key("train")
    args = {"data": f"dataset:{dataset}", "max_items": 1, "no_mlflow": True}
    job = jobs_server.wait_job(start(jobs_server, key, "evaluate", **args), key)
    assert job["status"] == DONE and job["exit_code"] == 0, job
    assert "--max-items=1" in job["command"] and "--no-mlflow" in job["command"]
    assert any(o.endswith(".json") for o in job["outputs"]) and "report.md" in job["outputs"]
    metrics = json.loads((jobs_server.work_dir / "jobs" / job["job"] / "out" / "metrics.json").read_text())
    assert metrics["images"] == 1


def test_a_pipeline_job_takes_a_dataset_id_as_its_new_data(jobs_server: Server, dataset: str):
    key = jobs_server.key("train")
    args = {"new_data": f"dataset:{dataset}", "gate_data": f"dataset:{dataset}", "gate_split": "", "dry_run": True}
    job = jobs_server.wait_job(start(jobs_server, key, "pipeline", **args), key)
    assert job["status"] == DONE, job
    decision = json.loads((jobs_server.work_dir / "jobs" / job["job"] / "out" / "decision.json").read_text())
    assert decision["decision"] == "dry-run" and decision["production"] == "0.0.1-test"
    assert Path(decision["new_data"]["path"]) == jobs_server.work_dir / "datasets" / dataset
    assert decision["steps"]["validate"]["accepted"] == 2
    assert job["mlflow_run_id"] is None  # a dry run starts no MLflow run


def test_a_train_job_takes_the_served_model_as_the_weights_to_fine_tune(jobs_server: Server, dataset: str):
    # The served test bundle was exported before bundles carried their training weights:
    # the run reaches hades-train, which refuses it with the reason (a bundle exported now
    # carries them: tests/unit/test_training.py fine-tunes one).
    key = jobs_server.key("train")
    args = {"data": f"dataset:{dataset}", "init": "served"}
    job = jobs_server.wait_job(start(jobs_server, key, "train", **args), key)
    assert job["status"] == FAILED, job
    lines = jobs_server.request("GET", f"/v1/jobs/{job['job']}/log?tail=20", key).json()["lines"]
    assert any("carries no training weights" in line for line in lines), lines


def test_a_failing_run_is_failed_with_its_exit_status_and_the_log_says_why(jobs_server: Server, dataset: str):
    key = jobs_server.key("train")
    args = {"data": f"dataset:{dataset}", "split": "nosuch", "no_mlflow": True}
    job = jobs_server.wait_job(start(jobs_server, key, "evaluate", **args), key)
    assert job["status"] == FAILED and job["exit_code"] == 2
    assert "exited with status 2" in job["error"]
    lines = jobs_server.request("GET", f"/v1/jobs/{job['job']}/log?tail=2", key).json()["lines"]
    assert any("nosuch" in line for line in lines), lines


def test_a_queued_and_a_running_job_are_cancelled(jobs_server: Server, dataset: str):
    key = jobs_server.key("train")
    running = start(jobs_server, key, "train", data=f"dataset:{dataset}")
    queued = start(jobs_server, key, "train", data=f"dataset:{dataset}")  # one train job at a time
    r = jobs_server.request("DELETE", f"/v1/jobs/{queued}", key)
    assert r.status == 200 and r.json()["status"] == CANCELLED and r.json()["started_at"] is None, r
    deadline = time.monotonic() + 30
    while jobs_server.request("GET", f"/v1/jobs/{running}", key).json()["status"] != RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = jobs_server.request("DELETE", f"/v1/jobs/{running}", key)
    assert r.status == 200 and r.json()["status"] == CANCELLED, r
    lines = jobs_server.request("GET", f"/v1/jobs/{running}/log", key).json()["lines"]
    assert lines[0].startswith("$ hades-train train --out=") and lines[-1].startswith("[cancelled: ")
    r = jobs_server.request("DELETE", f"/v1/jobs/{running}", key)
    assert r.status == 409 and "cancelled already" in r.json()["detail"]


# --- what a job may be asked to do ---------------------------------------------------------------
def test_an_argument_the_kind_does_not_take_is_refused(jobs_server: Server):
    refused(
        jobs_server, "monitor", 422, "does not take ['out']", "'current', 'reference'", current="served", out="/tmp"
    )


def test_a_path_outside_the_data_dirs_is_refused(jobs_server: Server):
    refused(jobs_server, "monitor", 422, "outside the server's data dirs", "POST /v1/datasets", current="/etc")


@pytest.mark.parametrize("ref", ["job:{batch}/../../..", "job:{batch}/../../../../api-keys.json", "../var"])
def test_a_reference_that_climbs_is_refused(jobs_server: Server, batch: str, ref: str):
    refused(jobs_server, "monitor", 422, "args.current", current=ref.format(batch=batch))


def test_a_dataset_or_job_that_does_not_exist_is_refused(jobs_server: Server):
    refused(jobs_server, "evaluate", 422, "no dataset 'ds-nope'", data="dataset:ds-nope")
    refused(jobs_server, "monitor", 422, "no job '20260101-000000-abcdef'", current="job:20260101-000000-abcdef")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"split": "val; rm -rf ~"}, ("args.split", "letters, digits")),
        ({"max_items": "1"}, ("args.max_items", "an integer")),
        ({"max_items": 0}, ("args.max_items 0", "expected 1 to")),
        ({"no_mlflow": "yes"}, ("args.no_mlflow", "true or false")),
    ],
)
def test_values_are_checked_by_type(jobs_server: Server, dataset: str, args: dict[str, Any], words: tuple[str, ...]):
    refused(jobs_server, "evaluate", 422, *words, data=f"dataset:{dataset}", **args)


def test_overrides_are_plain_key_value_pairs(jobs_server: Server, dataset: str):
    refused(jobs_server, "train", 422, "is not key=value", data=f"dataset:{dataset}", set=["epochs=1", "--config=x"])


def test_a_required_argument_and_the_kind_are_checked(jobs_server: Server):
    refused(jobs_server, "evaluate", 422, "evaluate needs args.data")
    r = jobs_server.request("POST", "/v1/jobs", jobs_server.key("train"), json_body={"kind": "shell", "args": {}})
    assert r.status == 422 and "kind" in r.json()["detail"]


def test_a_pipeline_needs_a_server_that_follows_a_store(bundle_server: Server):
    refused(bundle_server, "pipeline", 409, "follows none", new_data="served", gate_data="served")


# --- who sees what --------------------------------------------------------------------------------
def test_train_jobs_need_the_train_scope_to_start_and_to_read(jobs_server: Server, batch: str):
    r = jobs_server.request("POST", "/v1/jobs", jobs_server.key("read", "predict"), json_body={"kind": "monitor"})
    assert r.status == 403 and "'train'" in r.json()["detail"]
    train = jobs_server.key("train")
    job = start(jobs_server, train, "monitor", current=f"job:{batch}")
    predict = jobs_server.key("predict")
    assert jobs_server.request("GET", f"/v1/jobs/{job}", predict).status == 403
    assert jobs_server.request("GET", f"/v1/jobs/{job}/log", predict).status == 403
    seen = {j["kind"] for j in jobs_server.request("GET", "/v1/jobs", predict).json()["jobs"]}
    assert seen == {"batch"}
    assert jobs_server.request("GET", "/v1/jobs", jobs_server.key("read")).status == 403
    jobs_server.wait_job(job, train)


def test_an_unknown_job_is_404(jobs_server: Server):
    r = jobs_server.request("GET", "/v1/jobs/20260101-000000-abcdef", jobs_server.key("train"))
    assert r.status == 404 and "never existed or was pruned" in r.json()["detail"]


# --- the job store, without a server ----------------------------------------------------------------
def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def until_set(event: threading.Event) -> Any:
    """Work that runs until `event` is set."""

    def work(_handle: Handle) -> None:
        event.wait(10)

    return work


def test_finished_jobs_beyond_the_limit_are_deleted_oldest_first_and_active_ones_never(tmp_path: Path):
    jobs = Jobs(tmp_path, keep=2)
    jobs.start()
    release = threading.Event()
    try:
        first = jobs.submit("monitor", "train", "me", {}, lambda h: None)
        wait_until(lambda: jobs.get(first.id).status == DONE)  # type: ignore[union-attr]
        blocking = jobs.submit("monitor", "train", "me", {}, until_set(release))
        third = jobs.submit("monitor", "train", "me", {}, lambda h: None)
        assert jobs.get(first.id) is None and not (tmp_path / first.id).exists(), "the oldest finished one went"
        assert {j.id for j in jobs.recent()} == {blocking.id, third.id}
        with pytest.raises(Exception, match="2 jobs are queued or running"):
            jobs.submit("monitor", "train", "me", {}, lambda h: None)
    finally:
        release.set()
        jobs.stop()


def test_work_that_raises_fails_its_job_with_the_reason(tmp_path: Path):
    jobs = Jobs(tmp_path, keep=5)
    jobs.start()

    def work(handle: Handle) -> None:
        handle.log("step 1")
        raise JobError("step 2 found no data")

    try:
        job = jobs.submit("monitor", "train", "me", {}, work)
        wait_until(lambda: jobs.get(job.id).finished)  # type: ignore[union-attr]
        done = jobs.get(job.id)
        assert done is not None and done.status == FAILED and done.error == "step 2 found no data"
        assert jobs.log_tail(job.id, 10) == ["step 1"]
    finally:
        jobs.stop()


def test_a_restarted_server_marks_the_jobs_it_finds_running_as_failed(tmp_path: Path):
    first = Jobs(tmp_path, keep=5)
    first.start()
    release = threading.Event()
    job = first.submit("monitor", "train", "me", {}, until_set(release))
    wait_until(lambda: first.get(job.id).status == RUNNING)  # type: ignore[union-attr]
    # the server dies here: its record still says running
    second = Jobs(tmp_path, keep=5)
    second.start()
    try:
        found = second.get(job.id)
        assert found is not None and found.status == FAILED and "nothing resumes it" in (found.error or "")
    finally:
        release.set()
        second.stop()
        first.stop()


def test_the_log_tail_shows_a_progress_bar_as_it_last_stood(tmp_path: Path):
    jobs = Jobs(tmp_path, keep=5)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "log.txt").write_text("start\nepoch 1:  10%\repoch 1:  50%\repoch 1: 100%\ndone\n")
    assert jobs.log_tail("x", 2) == ["epoch 1: 100%", "done"]


def test_the_mlflow_run_comes_from_the_decision_the_bundle_or_the_log(tmp_path: Path):
    run = "0123456789abcdef0123456789abcdef"
    (tmp_path / "decision.json").write_text(json.dumps({"decision": "refused", "mlflow_run_id": run}))
    assert mlflow_run_id("pipeline", tmp_path, tmp_path / "log.txt") == run
    (tmp_path / "manifest.json").write_text(json.dumps({"lineage": {"mlflow_run_id": run}}))
    assert mlflow_run_id("export", tmp_path, tmp_path / "log.txt") == run
    (tmp_path / "log.txt").write_text(f"View run calm-owl at: http://mlflow:5000/#/experiments/3/runs/{run}\n")
    assert mlflow_run_id("train", tmp_path, tmp_path / "log.txt") == run
    (tmp_path / "log.txt").write_text("no run here\n")
    assert mlflow_run_id("evaluate", tmp_path, tmp_path / "log.txt") is None


def test_an_export_writes_its_bundle_into_the_job_s_own_folder(tmp_path: Path):
    (tmp_path / "jobs" / "20260101-000000-abcdef" / "out" / "checkpoints").mkdir(parents=True)
    (tmp_path / "jobs" / "20260101-000000-abcdef" / "out" / "checkpoints" / "best.pt").write_bytes(b"")
    (tmp_path / "data").mkdir()
    places = Places(tmp_path / "jobs", tmp_path / "datasets", (tmp_path / "data",), lambda: tmp_path, lambda j: True)
    args = {"checkpoint": "job:20260101-000000-abcdef/checkpoints/best.pt", "data": str(tmp_path / "data")}
    got = plan("export", args, places, "", "", tmp_path / "state.json")
    ckpt = tmp_path / "jobs" / "20260101-000000-abcdef" / "out" / "checkpoints" / "best.pt"
    assert got.argv(("hades-train",), tmp_path / "out") == [
        "hades-train",
        "export",
        f"--out={tmp_path / 'out'}",
        f"--checkpoint={ckpt}",
        f"--data={tmp_path / 'data'}",
        "--force",
    ]


# --- Azure ML jobs ---------------------------------------------------------------------------------
CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
AZURE_TRAIN = {"compute": "gpu-cluster", "data_path": "datasets/hades/v3", "config": str(CONFIGS / "default.yaml")}


def azure_places(tmp_path: Path) -> Places:
    return Places(tmp_path / "jobs", tmp_path / "datasets", (CONFIGS,), lambda: tmp_path, lambda j: True)


def test_an_azure_train_job_is_hades_train_azure_submit_with_its_spec_in_the_job_s_folder(tmp_path: Path):
    got = plan(
        "azure_train", {**AZURE_TRAIN, "set": ["epochs=3"]}, azure_places(tmp_path), "", "", tmp_path, azure=True
    )
    assert got.argv(("hades-train",), tmp_path / "out") == [
        "hades-train",
        "azure",
        "submit",
        f"--spec-out={tmp_path / 'out' / 'job.yaml'}",
        "--compute=gpu-cluster",
        "--data-path=datasets/hades/v3",
        f"--config={CONFIGS / 'default.yaml'}",
        "--",
        "--set=epochs=3",
    ]


def test_azure_jobs_submit_only_on_a_server_set_up_for_azure_ml_but_dry_runs_anywhere(tmp_path: Path):
    places = azure_places(tmp_path)
    with pytest.raises(ApiError, match="start it with --azure-ml") as refused:
        plan("azure_train", AZURE_TRAIN, places, "", "", tmp_path)
    assert refused.value.status_code == 409
    dry = plan("azure_train", {**AZURE_TRAIN, "dry_run": True}, places, "", "", tmp_path)
    assert "--dry-run" in dry.options


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"data_path": "../other/data"}, ("folder inside the datastore",)),
        ({"data_path": "https://evil.example/x"}, ("folder inside the datastore",)),
        ({"store": "https://acct.blob.core.windows.net/models?sv=2024&sig=SECRET"}, ("without credentials",)),
        ({"cron": "every monday"}, ("five cron fields",)),
    ],
)
def test_azure_arguments_are_checked(tmp_path: Path, args: dict[str, Any], words: tuple[str, ...]):
    base = {"compute": "gpu", "new_data_path": "new", "gate_data_path": "gate", "store": "azure://models"}
    base |= {"model": "hades-seedlings"}
    kind = "azure_pipeline" if {"store", "cron"} & set(args) else "azure_train"
    with pytest.raises(ApiError) as refused:
        plan(
            kind,
            {**(base if kind == "azure_pipeline" else AZURE_TRAIN), **args},
            azure_places(tmp_path),
            "",
            "",
            tmp_path,
            azure=True,
        )
    assert refused.value.status_code == 422
    assert all(w in refused.value.detail for w in words), refused.value.detail


def test_an_azure_pipeline_dry_run_over_http_writes_the_job_spec_and_contacts_nothing(tmp_path: Path):
    server = Server(tmp_path, "--bundle", str(TINY), "--data-dir", str(CONFIGS), "--live-namespace", "")
    try:
        server.wait_ready()
        key = server.key("train")
        refused = server.request("POST", "/v1/jobs", key, json_body={"kind": "azure_train", "args": AZURE_TRAIN})
        assert refused.status == 409 and "--azure-ml" in refused.json()["detail"]
        args = {
            "compute": "gpu-cluster",
            "new_data_path": "incoming/2026-11",
            "gate_data_path": "gate/v1",
            "store": "azure://models",
            "store_account_url": "https://hadesmodels.blob.core.windows.net",
            "model": "hades-seedlings",
            "cron": "0 3 * * 1",
            "dry_run": True,
        }
        job = server.wait_job(start(server, key, "azure_pipeline", **args), key, timeout=120)
        assert job["status"] == DONE, server.request("GET", f"/v1/jobs/{job['job']}/log", key).json()
        assert job["command"][:3] == ["hades-train", "azure", "pipeline"]
        assert "pipeline.yaml" in job["outputs"]
        spec = (server.work_dir / "jobs" / job["job"] / "out" / "pipeline.yaml").read_text()
        assert "hades-train pipeline" in spec and "azure://models" in spec
        assert any(o.endswith(".schedule.yaml") for o in job["outputs"]), job["outputs"]
    finally:
        server.stop()
