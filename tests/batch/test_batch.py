"""`hades-perception batch` re-processes an archive: every plate through the same
pipeline as `predict`, on a real local Ray (workers as Ray Data actors), from a folder
with sub-folders or a blob prefix; a plate that fails is reported and the rest goes on;
a second run resumes where the first stopped; traits.csv holds every plant of every
plate. The Azure ML parallel-job variant writes its spec (dry run) and its entry script
does the same per-plate work."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hades_perception.batch import azure_entry
from hades_perception.batch.archive import Archive, Results
from hades_perception.batch.azure import AzureBatch, submit_parallel_job
from hades_perception.batch.run import TRAIT_COLUMNS, plan
from hades_perception.inference.image_files import read_image
from hades_perception.inference.loading import load_checked
from tests.azurite import AZURITE, Azurite
from tests.bundles import SHIPPED
from tests.conftest import REPO

pytest.importorskip("ray.data", reason="the batch extra (ray[data]) is not installed")

PLATES = sorted((REPO / "ros2_ws/src/hades_perception_ros/test/data/plates/images").glob("*.png"))
PLANTS = json.loads((SHIPPED / "manifest.json").read_text())["calibration"]["plants"]


def batch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `hades-perception batch`, as a user runs it."""
    exe = Path(sys.executable).parent / "hades-perception"
    return subprocess.run(
        [str(exe), "batch", *args, "--model", str(SHIPPED), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def archive(folder: Path) -> Path:
    """Two plates at the top, the same two in a sub-folder, and one file that is not an image."""
    (folder / "series74").mkdir(parents=True)
    for p in PLATES:
        shutil.copy(p, folder / p.name)
        shutil.copy(p, folder / "series74" / p.name)
    (folder / "series74" / "notes.png").write_text("field notes, not a plate")
    return folder


def table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


FirstRun = tuple[Path, Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """The archive, the output folder and the first run: two workers of one thread each."""
    src = archive(tmp_path_factory.mktemp("archive"))
    out = tmp_path_factory.mktemp("out")
    return src, out, batch(str(src), "--out", str(out), "--workers", "2", "--threads", "1")


class TestAnArchiveOnALocalRay:
    def test_every_plate_is_predicted_as_predict_would_and_the_bad_file_is_reported(self, first_run: FirstRun):
        _, out, run = first_run
        assert run.returncode == 1, run.stderr[-2000:]  # a failure: reported, and the status says so
        assert "5 images: 0 done before, 4 predicted, 1 failed" in run.stdout
        names = sorted(p.name for p in (out / "results").iterdir())
        assert names == sorted([p.stem + ".json" for p in PLATES] + [f"series74__{p.stem}.json" for p in PLATES])
        failures = table(out / "failures.csv")
        assert [f["source"] for f in failures] == ["series74/notes.png"]
        assert "cannot be decoded as an image" in failures[0]["error"]
        # The same pipeline as `hades-perception predict`, on the same file.
        direct = load_checked(SHIPPED, ("CPUExecutionProvider",))(read_image(PLATES[0]))
        got = json.loads((out / "results" / f"series74__{PLATES[0].stem}.json").read_text())
        assert got["source"] == f"series74/{PLATES[0].name}"
        assert [lm["kind"] for lm in got["landmarks"]] == [lm.kind for lm in direct.landmarks]
        assert got["plants"] == [p.to_dict() for p in direct.plants]

    def test_traits_csv_has_a_row_per_plant_of_every_plate(self, first_run: FirstRun):
        _, out, _ = first_run
        rows = table(out / "traits.csv")
        assert tuple(rows[0]) == TRAIT_COLUMNS
        assert len(rows) == 4 * PLANTS
        assert {r["source"] for r in rows} == {p.name for p in PLATES} | {f"series74/{p.name}" for p in PLATES}
        assert {r["plant"] for r in rows} == {str(i) for i in range(PLANTS)}

    def test_a_second_run_resumes_predicting_only_what_is_not_done(self, first_run: FirstRun):
        src, out, _ = first_run
        (out / "results" / f"{PLATES[1].stem}.json").unlink()
        (src / "series74" / "notes.png").unlink()
        again = batch(str(src), "--out", str(out))
        assert again.returncode == 0, again.stderr[-2000:]
        assert "4 images: 3 done before, 1 predicted, 0 failed" in again.stdout
        assert table(out / "failures.csv") == []
        assert len(table(out / "traits.csv")) == 4 * PLANTS


def test_two_images_that_would_share_a_result_are_refused_before_anything_runs(tmp_path: Path):
    shutil.copy(PLATES[0], tmp_path / "plate.png")
    shutil.copy(PLATES[0], tmp_path / "plate.tif")
    with pytest.raises(ValueError, match=r"would both be results/plate\.json"):
        plan(Archive(str(tmp_path)), Results(str(tmp_path / "out")))


def test_a_missing_input_folder_is_a_clear_error(tmp_path: Path):
    run = batch(str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and "no such folder" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[Azurite]:
    if not AZURITE.exists():
        pytest.skip(f"Azurite is not installed at {AZURITE} (scripts/setup.sh installs it with npm)")
    server = Azurite(tmp_path / "azurite").start()
    yield server
    server.stop()


def test_an_archive_in_blob_storage_is_read_and_written_there(azurite: Azurite, monkeypatch: pytest.MonkeyPatch):
    """A real Azurite: the input and the output are prefixes of a container."""
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(azurite.connection_string).create_container("plates")
    for p in PLATES:
        container.upload_blob(f"archive/exp74/{p.name}", p.read_bytes())
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    run = batch("azure://plates/archive", "--out", "azure://plates/out", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 images: 0 done before, 2 predicted, 0 failed" in run.stdout
    written = sorted(b.name for b in container.list_blobs(name_starts_with="out/"))
    assert written == sorted(
        ["out/failures.csv", "out/traits.csv", *(f"out/results/exp74__{p.stem}.json" for p in PLATES)]
    )
    traits = container.download_blob("out/traits.csv").readall().decode()
    assert len(list(csv.DictReader(io.StringIO(traits)))) == 2 * PLANTS


class TestAzureMLParallelJob:
    def test_a_dry_run_writes_a_pipeline_with_one_parallel_step(self, tmp_path: Path):
        spec = AzureBatch("cpu-cluster", "archives/exp74", "results/exp74", "models/hades-seedlings", instances=4)
        path = submit_parallel_job(spec, tmp_path / "batch.yaml", dry_run=True)
        doc = yaml.safe_load(path.read_text())
        step = doc["jobs"]["predict"]
        assert doc["type"] == "pipeline" and step["type"] == "parallel"
        assert step["resources"]["instance_count"] == 4 and step["compute"] == "azureml:cpu-cluster"
        assert step["inputs"]["archive"]["path"] == "azureml://datastores/workspaceblobstore/paths/archives/exp74"
        assert step["task"]["entry_script"] == "hades_perception/batch/azure_entry.py"
        assert (path.parent / step["task"]["code"] / step["task"]["entry_script"]).resolve().is_file()
        assert step["error_threshold"] == -1  # a failed plate never ends the job

    def test_paths_outside_the_datastore_are_refused(self, tmp_path: Path):
        spec = AzureBatch("cpu-cluster", "../other", "results", "models/m")
        with pytest.raises(ValueError, match="folder inside datastore"):
            submit_parallel_job(spec, tmp_path / "batch.yaml", dry_run=True)

    def test_its_entry_script_does_the_same_per_plate_work(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        """What Azure ML calls on each node: init() with the program arguments, run() per mini-batch."""
        src = archive(tmp_path / "mounted-archive")
        out = tmp_path / "mounted-results"
        args = ["entry", "--input", str(src), "--model", str(SHIPPED), "--out", str(out), "--threads", "1"]
        monkeypatch.setattr(sys, "argv", [*args, "--azureml-extra", "x"])
        azure_entry.init()
        rows = azure_entry.run([str(src / "series74" / PLATES[0].name), str(src / "series74" / "notes.png")])
        assert rows[0] == f"series74/{PLATES[0].name},True,"
        assert rows[1].startswith("series74/notes.png,False,ValueError")
        assert (out / "results" / f"series74__{PLATES[0].stem}.json").is_file()
