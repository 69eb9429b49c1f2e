"""Jobs: work the API starts and a client follows by id, either a batch of predictions
or a `hades-train` run (train, evaluate, export, pipeline, monitor) in a subprocess.

  <work dir>/jobs/<id>/job.json    the record: status, counts, exit code, MLflow run (rewritten whole)
  <work dir>/jobs/<id>/log.txt     what it printed (a batch: a line per image)
  <work dir>/jobs/<id>/out/        what it made: predict JSONs (a batch), the --out of hades-train
  <work dir>/jobs/<id>/inputs/     a batch's images, until they are predicted

Rules, and why:
- Status: queued -> running -> done | failed | cancelled. A job that cannot start
  (bad arguments, an unsafe zip) is refused by its route and never gets an id.
- Two lanes, each one thread taking one job at a time in order: `predict` (batches;
  each image also takes the serving lock, so single requests slip in between a
  batch's images) and `train` (hades-train subprocesses: on a CPU one run takes every
  core, and two would only make both slower).
- A subprocess gets its own process group and no shell; cancelling one sends SIGTERM
  to the group, then SIGKILL after CANCEL_GRACE_S.
- Bounded: when a job is added, the oldest finished jobs beyond `keep` are deleted with
  their folders. Active jobs are never deleted; when `keep` of them wait, a new one is
  refused (503) rather than queued without end.
- Nothing resumes across a restart: a stopping server ends its subprocess, and a
  starting one marks the jobs it finds queued or running as failed, saying why.
This module knows nothing of HTTP or of what a job does: it runs `work(handle)`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hades_perception.api.errors import ApiError

log = logging.getLogger(__name__)
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
LANES = ("predict", "train")
ID_PATTERN = r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$"
CANCEL_GRACE_S = 10.0
LOG_FILE, RECORD_FILE, OUT_DIR, INPUTS_DIR = "log.txt", "job.json", "out", "inputs"
STAGING = ".staging"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_id() -> str:
    """Sortable by creation time, unguessable enough that ids are not enumerated."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class JobError(Exception):
    """Raised by a job's work: it ended, and this says why it failed."""


@dataclass
class Job:
    id: str
    kind: str  # batch, or a hades-train subcommand
    lane: str
    by: str  # the key's name
    created_at: str
    args: dict[str, Any]
    status: str = QUEUED
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    exit_code: int | None = None
    command: list[str] | None = None
    mlflow_run_id: str | None = None
    counts: dict[str, int] | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Job:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE


Work = Callable[["Handle"], None]


class Handle:
    """What a job's work talks to: its folder, its log, its record, whether it was cancelled."""

    def __init__(self, jobs: Jobs, job_id: str) -> None:
        self.jobs, self.id = jobs, job_id
        self.folder = jobs.path(job_id)
        self.out = self.folder / OUT_DIR
        self.cancelled = threading.Event()
        self.stopping = False  # the server is stopping: a cancel then is a failure, not the client's

    def log(self, line: str) -> None:
        with (self.folder / LOG_FILE).open("a") as f:
            f.write(line.rstrip("\n") + "\n")

    def update(self, **changes: Any) -> None:
        self.jobs.update(self.id, **changes)


class Jobs:
    """The jobs under `root` (<work dir>/jobs), their two lanes, and their records."""

    def __init__(self, root: Path, keep: int) -> None:
        self.root, self.keep = Path(root), keep
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._handles: dict[str, Handle] = {}
        self._finished: dict[str, threading.Event] = {}
        self._queues: dict[str, queue.Queue[tuple[str, Work] | None]] = {lane: queue.Queue() for lane in LANES}
        self._threads: list[threading.Thread] = []

    # --- start and stop ---------------------------------------------------------------------
    def start(self) -> None:
        """Read the records left by an earlier server, then start the lanes."""
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / STAGING, ignore_errors=True)  # uploads that never became jobs
        found = []
        for record in self.root.glob(f"*/{RECORD_FILE}"):
            try:
                job = Job.from_json(json.loads(record.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("%s: unreadable job record, ignored (%s)", record, exc)
                continue
            if not job.finished:
                job.status, job.finished_at = FAILED, now()
                job.error = "the server stopped before this job finished; nothing resumes it: submit it again"
                self._write(job)
            found.append(job)
        with self._lock:
            self._jobs = {j.id: j for j in sorted(found, key=lambda j: (j.created_at, j.id))}
            self._finished = {j.id: _set_event() for j in found}
        for lane in LANES:
            thread = threading.Thread(target=self._run_lane, args=(lane,), name=f"{lane}-jobs", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = CANCEL_GRACE_S + 5.0) -> None:
        """End the running jobs (a subprocess gets SIGTERM), fail the queued ones, stop the lanes."""
        with self._lock:
            handles = list(self._handles.values())
            queued = [j.id for j in self._jobs.values() if j.status == QUEUED]
        for handle in handles:
            handle.stopping = True
            handle.cancelled.set()
        for job_id in queued:
            self._finish(job_id, FAILED, "the server stopped before this job started; submit it again")
        for q in self._queues.values():
            q.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    # --- adding -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A folder to prepare a job's inputs in; removed unless `submit` took it."""
        folder = self.root / STAGING / secrets.token_hex(8)
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def submit(
        self,
        kind: str,
        lane: str,
        by: str,
        args: dict[str, Any],
        work: Work,
        staged: Path | None = None,
        **record: Any,
    ) -> Job:
        """A new queued job, run as work(handle) when its lane comes to it. `staged`: a
        folder from `staging()` that becomes the job's folder (a batch's images)."""
        if lane not in LANES:
            raise ValueError(f"lane {lane!r}: expected one of {LANES}")
        with self._lock:
            active = sum(not j.finished for j in self._jobs.values())
            if active >= self.keep:
                raise ApiError(
                    503,
                    "unavailable",
                    f"{active} jobs are queued or running, as many as this server keeps; wait for some to "
                    "finish, or cancel one (DELETE /v1/jobs/{id})",
                    headers={"Retry-After": "60"},
                )
            job_id = new_id()
            while job_id in self._jobs:
                job_id = new_id()
            folder = self.path(job_id)
            if staged is not None:
                staged.rename(folder)
            else:
                folder.mkdir(parents=True)
            (folder / OUT_DIR).mkdir(exist_ok=True)
            job = Job(job_id, kind, lane, by, now(), args, **record)
            self._jobs[job_id] = job
            self._finished[job_id] = threading.Event()
            self._write(job)
            removed = self._prune()
        for old in removed:
            shutil.rmtree(self.path(old), ignore_errors=True)
        self._queues[lane].put((job_id, work))
        log.info("job %s (%s) queued by %s", job_id, kind, by)
        return Job(**asdict(job))

    def _prune(self) -> list[str]:
        """Drop the oldest finished jobs beyond `keep` (under the lock); their ids."""
        finished = [j.id for j in self._jobs.values() if j.finished]
        excess = len(self._jobs) - self.keep
        removed = finished[: max(excess, 0)]
        for job_id in removed:
            del self._jobs[job_id]
            self._finished.pop(job_id, None)
        return removed

    # --- reading ----------------------------------------------------------------------------
    def path(self, job_id: str) -> Path:
        return self.root / job_id

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return Job(**asdict(job)) if job is not None else None

    def recent(self, kinds: Sequence[str] | None = None) -> list[Job]:
        """Newest first."""
        with self._lock:
            jobs = [Job(**asdict(j)) for j in self._jobs.values() if kinds is None or j.kind in kinds]
        return jobs[::-1]

    def log_tail(self, job_id: str, lines: int) -> list[str]:
        """The last `lines` lines of the job's log; a progress bar's line as it last stood."""
        path = self.path(job_id) / LOG_FILE
        try:
            with path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - min(size, 400 * lines + 65536)))
                text = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        rows = [row.rsplit("\r", 1)[-1] for row in text.split("\n")]
        if rows and rows[-1] == "":
            rows.pop()
        return rows[-lines:]

    # --- changing ---------------------------------------------------------------------------
    def update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            for k, v in changes.items():
                setattr(job, k, v)
            self._write(job)

    def cancel(self, job_id: str, wait_s: float = CANCEL_GRACE_S + 5.0) -> Job:
        """Cancel a queued or running job and wait (up to wait_s) until it has stopped."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.finished:
                raise ApiError(409, "conflict", f"job {job_id} is {job.status} already; there is nothing to cancel")
            handle = self._handles.get(job_id)
            queued = job.status == QUEUED and handle is None
            finished = self._finished[job_id]
        if queued:
            self._finish(job_id, CANCELLED, "cancelled before it started")
        elif handle is not None:
            handle.cancelled.set()
        finished.wait(wait_s)
        got = self.get(job_id)
        assert got is not None
        return got

    def _finish(self, job_id: str, status: str, error: str | None = None, **changes: Any) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finished:
                return
            job.status, job.finished_at, job.error = status, now(), error
            for k, v in changes.items():
                setattr(job, k, v)
            self._write(job)
            self._handles.pop(job_id, None)
            done = self._finished.get(job_id)
        if done is not None:
            done.set()
        log.info("job %s %s%s", job_id, status, f": {error}" if error else "")

    def _write(self, job: Job) -> None:
        folder = self.path(job.id)
        if not folder.is_dir():
            return  # pruned meanwhile
        tmp = folder / f".{RECORD_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(job), indent=1))
        os.replace(tmp, folder / RECORD_FILE)

    # --- the lanes --------------------------------------------------------------------------
    def _run_lane(self, lane: str) -> None:
        q = self._queues[lane]
        while True:
            item = q.get()
            if item is None:
                return
            job_id, work = item
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.status != QUEUED:
                    continue  # cancelled or failed while it waited
                handle = self._handles[job_id] = Handle(self, job_id)
                job.status, job.started_at = RUNNING, now()
                self._write(job)
            self._run(handle, work)

    def _run(self, handle: Handle, work: Work) -> None:
        try:
            work(handle)
        except JobError as exc:
            self._finish(handle.id, FAILED, str(exc))
        except ApiError as exc:  # the work met a refusal it could not report otherwise
            self._finish(handle.id, FAILED, f"{exc.error}: {exc.detail}")
        except Exception as exc:
            log.exception("job %s failed", handle.id)
            self._finish(handle.id, FAILED, f"{type(exc).__name__}: {exc}")
        else:
            if handle.stopping:
                self._finish(handle.id, FAILED, "the server stopped while this job ran; submit it again")
            elif handle.cancelled.is_set():
                self._finish(handle.id, CANCELLED, "cancelled while it ran")
            else:
                self._finish(handle.id, DONE)


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def run_subprocess(handle: Handle, argv: Sequence[str], env: Mapping[str, str], show: Sequence[str]) -> int:
    """Run argv (no shell) with its output in the job's log until it exits or the job is
    cancelled; its exit status. `show` is the command as the log and the record show it."""
    handle.log("$ " + " ".join(show))
    with (handle.folder / LOG_FILE).open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # its own process group: a cancel ends its children too
        )
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if handle.cancelled.is_set():
                break
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(CANCEL_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        code = proc.wait()
    handle.log(f"[cancelled: the process group got SIGTERM; exit status {code}]")
    return code


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
