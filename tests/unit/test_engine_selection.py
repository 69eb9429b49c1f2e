"""Which prebuilt TensorRT engine a bundle serves on a machine: the one whose key names
this GPU model, TensorRT version and precision, and only a file the manifest checks.
Without TensorRT (this machine) there is no key, and ONNX Runtime serves; an engine
that cannot run here is passed over for ONNX Runtime with the reason logged. Running
a chosen engine needs TensorRT and a CUDA GPU and is skipped otherwise."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hades_perception.contract.bundle import (
    MANIFEST,
    BundleError,
    Manifest,
    file_entries,
    open_bundle,
    write_manifest,
)
from hades_perception.contract.golden import check_golden
from hades_perception.inference.engine import CPU, CUDA, OPENVINO, TENSORRT, computes_in, provider_options
from hades_perception.inference.loading import cache_key, load_checked, load_pipeline, native_keys, resolve_precision
from hades_perception.inference.pipeline import Pipeline
from hades_perception.inference.tensorrt_engine import (
    TensorRTEngine,
    build_engine,
    engine_key,
    local_engine_key,
    prebuilt_engine,
    tensorrt_available,
)
from tests.bundles import NOT_ABOUT_SPEED_MS, SHIPPED, failing_golden_version, new_version

ORIN = engine_key("NVIDIA Jetson AGX Orin", "10.3.0", "fp16")
H100 = engine_key("NVIDIA H100 80GB HBM3", "10.13.3", "fp16")


def with_engines(bundle: Path, engines: dict[str, str], checked: bool = True) -> Path:
    """`bundle` shipping a (dummy) plan file per key, listed in the manifest's engines,
    and under files unless `checked` is False."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    for key, rel in engines.items():
        (bundle / rel).parent.mkdir(exist_ok=True)
        (bundle / rel).write_bytes(key.encode() * 100)
    manifest["files"] = file_entries(bundle)
    if not checked:
        for rel in engines.values():
            manifest["files"].pop(rel)
    manifest["engines"] = {key: {"file": rel, "precision": "fp16"} for key, rel in engines.items()}
    write_manifest(bundle, manifest)
    return bundle


def test_engine_keys_name_the_gpu_model_the_tensorrt_version_and_the_precision() -> None:
    assert ORIN == "nvidia-jetson-agx-orin_trt10.3.0_fp16"
    assert H100 == "nvidia-h100-80gb-hbm3_trt10.13.3_fp16"


def test_the_engine_for_this_machines_key_is_chosen_and_no_other(tmp_path: Path) -> None:
    bundle = with_engines(
        new_version(tmp_path / "v", "9.9.9"), {ORIN: f"engines/{ORIN}.plan", H100: f"engines/{H100}.plan"}
    )
    manifest = open_bundle(bundle)  # the engines are checked like every other file
    assert prebuilt_engine(bundle, manifest, ORIN) == bundle / f"engines/{ORIN}.plan"
    assert prebuilt_engine(bundle, manifest, H100) == bundle / f"engines/{H100}.plan"
    assert prebuilt_engine(bundle, manifest, engine_key("NVIDIA Jetson AGX Orin", "10.4.0", "fp16")) is None
    assert prebuilt_engine(bundle, manifest, None) is None  # no TensorRT here: ONNX Runtime serves


def test_an_engine_file_the_manifest_does_not_checksum_is_refused(tmp_path: Path) -> None:
    bundle = with_engines(new_version(tmp_path / "v", "9.9.9"), {ORIN: f"engines/{ORIN}.plan"}, checked=False)
    manifest = open_bundle(bundle)
    with pytest.raises(BundleError, match="not among the files the manifest checks"):
        prebuilt_engine(bundle, manifest, ORIN)


def test_without_an_engine_for_this_machine_onnx_runtime_serves(tmp_path: Path) -> None:
    bundle = with_engines(new_version(tmp_path / "v", "9.9.9"), {H100: f"engines/{H100}.plan"})
    for key in (None, ORIN):
        pipeline = load_pipeline(bundle, providers=("CPUExecutionProvider",), engine_key=key)
        assert pipeline.engine.name.startswith("onnxruntime:CPUExecutionProvider")


def test_an_engine_that_cannot_run_here_is_passed_over_for_onnx_runtime_with_the_reason_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The bundle ships an engine under this machine's key, but the file is no engine
    this TensorRT can deserialise (or, as here, there is no TensorRT at all)."""
    bundle = with_engines(new_version(tmp_path / "v", "9.9.9"), {ORIN: f"engines/{ORIN}.plan"})
    with caplog.at_level(logging.WARNING, logger="hades_perception.inference.loading"):
        pipeline = load_pipeline(bundle, providers=("CPUExecutionProvider",), engine_key=ORIN)
    assert pipeline.engine.name.startswith("onnxruntime:CPUExecutionProvider")
    assert f"engine {ORIN}.plan not used" in caplog.text and "ONNX Runtime instead" in caplog.text


@pytest.mark.skipif(tensorrt_available()[0], reason="TensorRT and a CUDA GPU are present here")
def test_a_machine_without_tensorrt_has_no_engine_key_and_says_why() -> None:
    key, why = local_engine_key()
    assert key is None
    assert why == tensorrt_available()[1] and why


@pytest.mark.skipif(tensorrt_available()[0], reason="TensorRT and a CUDA GPU are present here")
@pytest.mark.parametrize("force", [False, True])
def test_an_engine_file_that_cannot_be_built_here_is_refused_with_the_reason(tmp_path: Path, force: bool) -> None:
    """engine_file_path names an engine that is missing (or a rebuild is asked for):
    without TensorRT it cannot be built, and the node must not start on a guess."""
    engine = tmp_path / "engines" / "hades.plan"
    if force:
        engine.parent.mkdir()
        engine.write_bytes(b"an engine from before")
    with pytest.raises(BundleError, match="cannot be built here") as refused:
        load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), engine_file=engine, force_engine_update=force)
    assert ("rebuild was asked for" if force else "does not exist") in str(refused.value)
    assert not engine.with_name("hades.plan.partial").exists()


def _engine_file_built_for(tmp_path: Path, **built: object) -> Path:
    """An engine file (its bytes do not matter: it is judged by its description) whose
    description says it was built from the shipped model.onnx in fp16 for a 768 tile,
    but for what `built` says instead."""
    from hades_perception.inference.tensorrt_engine import description_path, engine_description

    manifest = open_bundle(SHIPPED)
    engine = tmp_path / "hades.plan"
    engine.write_bytes(b"an engine from before")
    source = manifest.model_sha256()
    described = engine_description(source, "fp16", manifest.input.tile, "Orin", "10.3.0") | built
    description_path(engine).write_text(json.dumps(described))
    return engine


@pytest.mark.skipif(tensorrt_available()[0], reason="TensorRT and a CUDA GPU are present here")
@pytest.mark.parametrize(
    ("built", "why"),
    [({"source_sha256": "0" * 64}, "model file"), ({"precision": "int8"}, "precision"), ({"tile": 1440}, "tile")],
    ids=["another model version", "another precision", "another tile"],
)
def test_an_engine_file_built_from_another_model_or_precision_is_stale_and_not_served(
    tmp_path: Path, built: dict[str, object], why: str
) -> None:
    """An engine_file_path engine left from an earlier version (or built in int8 while
    fp16 is asked for) would serve the wrong model under the right name: it is rebuilt
    where TensorRT is, and refused with the reason where it is not."""
    engine = _engine_file_built_for(tmp_path, **built)
    with pytest.raises(BundleError, match=rf"stale: built for another {why}.*cannot be built here"):
        load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), engine_file=engine, precision="fp16")


def test_an_engine_file_built_from_this_model_is_current_and_one_without_a_description_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hades_perception.inference.tensorrt_engine import description_path, engine_description, stale_engine

    manifest = open_bundle(SHIPPED)
    source = manifest.model_sha256()
    engine = _engine_file_built_for(tmp_path)
    # Where no TensorRT can say which GPU and version this is, those are not compared.
    assert stale_engine(engine, engine_description(source, "fp16", manifest.input.tile, "unknown", "unknown")) is None
    assert stale_engine(engine, engine_description(source, "fp16", manifest.input.tile, "Orin", "10.3.0")) is None
    assert "GPU" in str(stale_engine(engine, engine_description(source, "fp16", manifest.input.tile, "Thor", "10.3.0")))
    description_path(engine).unlink()
    with caplog.at_level(logging.WARNING):
        assert stale_engine(engine, engine_description(source, "fp16", manifest.input.tile, "Orin", "10.3.0")) is None
    assert "not checked" in caplog.text


@pytest.mark.skipif(not tensorrt_available()[0], reason=f"needs TensorRT and a CUDA GPU: {tensorrt_available()[1]}")
def test_an_engine_built_for_this_machine_is_chosen_and_passes_the_bundles_golden_check(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    bundle = new_version(tmp_path / "v", "9.9.9", src=tiny_bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    key, entry = build_engine(
        bundle / "model.onnx",
        bundle / "engines",
        tile=manifest["input"]["tile"],
        input_name=manifest["input"]["tensor"],
    )
    assert key == local_engine_key()[0]
    manifest["engines"] = {key: entry}
    manifest["files"] = file_entries(bundle)
    write_manifest(bundle, manifest)
    checked = open_bundle(bundle)
    plan = prebuilt_engine(bundle, checked, key)
    assert plan is not None
    report = check_golden(bundle, Pipeline(checked, TensorRTEngine(plan, checked.input.tensor)))
    assert report.ok, report.problems
    served = load_pipeline(bundle, providers=("CPUExecutionProvider",), engine_key=key)
    assert served.engine.name == f"tensorrt:{key}"


@pytest.mark.skipif(not tensorrt_available()[0], reason=f"needs TensorRT and a CUDA GPU: {tensorrt_available()[1]}")
def test_a_missing_engine_file_is_built_from_the_bundles_onnx_and_serves(tiny_bundle: Path, tmp_path: Path) -> None:
    engine = tmp_path / "engines" / "tiny.plan"
    served = load_pipeline(tiny_bundle, providers=("CPUExecutionProvider",), engine_file=engine)
    assert engine.is_file() and served.engine.name == "tensorrt:tiny"
    assert json.loads(engine.with_name("tiny.plan.json").read_text())["precision"] == "fp16"
    report = check_golden(tiny_bundle, served)
    assert report.ok, report.problems


def with_gate(bundle: Path, passed: bool | None, reasons: tuple[str, ...] = ()) -> Path:
    """`bundle` whose int8 variant's gate record says `passed` (None: no record, as in
    bundles exported before the gate)."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    variant = manifest["variants"]["model.int8.onnx"]
    variant.pop("gate", None)
    if passed is not None:
        variant["gate"] = {"passed": passed, "reasons": list(reasons), "max_iou_drop": 0.005}
    write_manifest(bundle, manifest)
    return bundle


def test_auto_serves_the_int8_variant_that_passed_its_gate_on_a_cpu_and_it_matches_its_own_golden_sample(
    tmp_path: Path,
):
    """The shipped bundle's int8 variant passed its gate at export: on this CPU `auto`
    (the default everywhere) serves it, and it computes what it computed at export."""
    assert load_pipeline(SHIPPED, providers=("CPUExecutionProvider",)).engine.name == (
        "onnxruntime:CPUExecutionProvider:int8"
    )
    pipe = load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), precision="int8")
    assert pipe.engine.precision == "int8"
    report = check_golden(SHIPPED, pipe, NOT_ABOUT_SPEED_MS)
    assert report.ok, report.problems
    assert load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), precision="fp32").engine.precision == "fp32"


def test_the_shipped_int8_variants_weights_fit_in_7_bits_so_cpus_without_vnni_compute_it_exactly():
    """x86 CPUs without VNNI (AVX2 only) multiply uint8 activations by int8 weights in
    pairs summed into int16, which saturates with full 8-bit weights: there the variant
    as first shipped gave root IoU 0.48 against fp32's 0.82 on ONNX Runtime and OpenVINO
    alike, and failed its golden check. Exported with 7-bit weights (reduce_range) it
    computes on such a CPU what it computes on any other (the golden check above)."""
    from onnx import load, numpy_helper

    model = load(str(SHIPPED / "model.int8.onnx"))
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dequantised = [n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"]
    int8 = [weights[w] for w in dequantised if w in weights and weights[w].dtype.name == "int8"]
    assert len(int8) >= 10, "the variant's convolution weights are stored as int8"
    largest = max(int(abs(w.astype(int)).max()) for w in int8)
    assert 2 * 255 * largest <= 2**15 - 1, f"weights up to {largest}: a pair of products overflows int16"


@pytest.mark.parametrize(
    ("weights", "hinted"), [("8-bit", True), ("7-bit", False)], ids=["8-bit weights: told", "7-bit: not"]
)
def test_an_int8_variant_that_fails_its_golden_check_serves_fp32_and_8_bit_weights_are_named_as_the_likely_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, weights: str, hinted: bool
):
    """A bundle exported before 7-bit weights, on a CPU without VNNI: its int8 variant
    fails the golden check, fp32 serves, and the warning says what to do about it."""
    variants = json.loads((SHIPPED / MANIFEST).read_text())["variants"]
    if weights == "8-bit":  # the format record such an export wrote
        variants["model.int8.onnx"]["format"] = "QDQ static, per-channel int8 weights, uint8 activations"
    bundle = failing_golden_version(tmp_path / "v", "9.9.9", variants=variants)
    with caplog.at_level("WARNING", logger="hades_perception.inference.loading"):
        pipe = load_checked(bundle, ("CPUExecutionProvider",))
    assert pipe.engine.precision == "fp32"
    assert "golden check failed" in caplog.text and "serving fp32 instead" in caplog.text
    assert ("export the version again with a current hades-train for 7-bit weights" in caplog.text) is hinted


@pytest.mark.parametrize("passed", [False, None], ids=["failed its gate", "no gate record"])
@pytest.mark.parametrize("asked", ["auto", "int8"])
def test_an_int8_variant_without_a_passed_gate_is_never_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, passed: bool | None, asked: str
):
    bundle = with_gate(new_version(tmp_path / "v", "9.9.9"), passed, ("seed IoU -0.0137 (gate -0.005)",))
    with caplog.at_level("INFO", logger="hades_perception.inference.loading"):
        pipe = load_pipeline(bundle, providers=("CPUExecutionProvider",), precision=asked)
    assert pipe.engine.name == "onnxruntime:CPUExecutionProvider"
    assert ("seed IoU -0.0137" if passed is False else "no accuracy gate record") in caplog.text


def test_int8_on_a_bundle_without_the_variant_serves_fp32_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    bundle = new_version(tmp_path / "no-int8", "9.9.9", variants={})
    (bundle / "model.int8.onnx").unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"].pop("model.int8.onnx")
    write_manifest(bundle, manifest)
    with pytest.raises(BundleError, match="ships no int8 variant"):
        Pipeline.from_bundle(bundle, ("CPUExecutionProvider",), precision="int8")
    with caplog.at_level("WARNING"):
        pipe = load_pipeline(bundle, providers=("CPUExecutionProvider",), precision="int8")
    assert pipe.engine.name == "onnxruntime:CPUExecutionProvider" and "ships no int8 variant" in caplog.text


def test_an_unknown_precision_is_refused_before_anything_loads():
    with pytest.raises(BundleError, match="precision 'bf16'"):
        load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), precision="bf16")


@pytest.mark.parametrize(
    ("asked", "provider", "gate", "served"),
    [
        ("auto", CPU, True, "int8"),
        ("auto", OPENVINO, True, "int8"),
        ("auto", TENSORRT, True, "fp16"),  # the variant's asymmetric uint8 activations: not for TensorRT
        ("auto", CUDA, True, "fp32"),  # QDQ int8 gains nothing on the CUDA provider
        ("auto", CPU, False, "fp32"),
        ("auto", TENSORRT, False, "fp16"),
        ("fp16", TENSORRT, True, "fp16"),
        ("fp16", CPU, True, "fp32"),  # fp16 is a TensorRT build flag
        ("int8", CUDA, True, "int8"),  # asked for by name: served where the gate passed
        ("int8", CPU, False, "fp32"),
        ("fp32", TENSORRT, True, "fp32"),
    ],
)
def test_the_precision_served_follows_the_provider_and_the_int8_gate(
    asked: str, provider: str, gate: bool, served: str
):
    raw = json.loads((SHIPPED / MANIFEST).read_text())
    raw["variants"]["model.int8.onnx"]["gate"] = {"passed": gate, "reasons": [] if gate else ["root IoU -0.01"]}
    assert resolve_precision(Manifest.from_dict(raw), asked, provider)[0] == served


@pytest.mark.parametrize(
    ("precision", "provider", "computes"),
    [
        ("fp16", TENSORRT, "fp16"),
        # TensorRT listed but its libraries missing: ONNX Runtime falls back to CUDA (seen on
        # an H200 without TensorRT, 2026-11-30), where model.onnx computes in fp32
        ("fp16", CUDA, "fp32"),
        ("fp16", CPU, "fp32"),
        ("int8", CUDA, "int8"),  # the int8 file stays int8 wherever it runs
        ("fp32", TENSORRT, "fp32"),
    ],
)
def test_an_engine_names_the_precision_its_provider_computes_in(precision: str, provider: str, computes: str):
    assert computes_in(precision, provider) == computes


def test_prebuilt_engines_are_looked_for_best_precision_first_and_int8_only_past_its_gate():
    raw = json.loads((SHIPPED / MANIFEST).read_text())
    raw["variants"]["model.int8.onnx"]["gate"] = {"passed": True, "reasons": []}
    passed = Manifest.from_dict(raw)
    assert native_keys(passed, "auto", ORIN) == [ORIN]  # auto: fp16 engines (docs/engines.md)
    assert native_keys(passed, "int8", ORIN) == [ORIN.replace("fp16", "int8"), ORIN]
    assert native_keys(passed, "fp32", ORIN) == [ORIN.replace("fp16", "fp32")]
    raw["variants"]["model.int8.onnx"]["gate"] = {"passed": False, "reasons": ["x"]}
    assert native_keys(Manifest.from_dict(raw), "int8", ORIN) == [ORIN]
    assert native_keys(passed, "auto", None) == []  # no TensorRT here


def test_tensorrt_builds_once_per_gpu_version_precision_and_shape_into_a_keyed_cache(tmp_path: Path):
    """What ONNX Runtime's TensorRT provider is given (it cannot run here): fp16 and int8
    flags by precision, one fixed input shape (the manifest's tile), and the engine and
    timing caches in a folder whose name carries the GPU, TensorRT version, precision
    and shape, so a cached engine is only ever reused where it was built for."""
    manifest = open_bundle(SHIPPED)
    tile = manifest.input.tile
    opts = provider_options(
        TENSORRT, precision="int8", threads=None, cache_dir=tmp_path / "c", tile=tile, input_name="image"
    )
    assert opts["trt_int8_enable"] == "True" and opts["trt_fp16_enable"] == "True"
    assert opts["trt_profile_max_shapes"] == opts["trt_profile_opt_shapes"] == f"image:1x3x{tile}x{tile}"
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_engine_cache_path"] == str(tmp_path / "c")
    fp16 = provider_options(TENSORRT, precision="fp16", threads=None, cache_dir=None, tile=tile, input_name="image")
    assert fp16["trt_fp16_enable"] == "True" and fp16["trt_int8_enable"] == "False"
    assert "trt_engine_cache_path" not in fp16
    key = cache_key(manifest, "fp16", TENSORRT)
    assert key.startswith(manifest.sha256[:16] + "/") and key.endswith(f"_fp16_{tile}x{tile}")
    int8_sha = manifest.raw["files"]["model.int8.onnx"]["sha256"]
    assert cache_key(manifest, "int8", OPENVINO).startswith(int8_sha[:16] + "/")  # the file that runs
    assert "_trt" in key  # the TensorRT version ("unknown" without its Python package)
    assert cache_key(manifest, "int8", OPENVINO) == f"{int8_sha[:16]}/openvino_int8_{tile}x{tile}"
    ov = provider_options(OPENVINO, precision="int8", threads=2, cache_dir=tmp_path, tile=tile, input_name="image")
    assert ov == {"device_type": "CPU", "num_of_threads": "2", "cache_dir": str(tmp_path)}


def test_the_cpu_provider_has_nothing_to_cache_and_writes_nothing(tmp_path: Path):
    """OpenVINO's cache is filled for real in test_openvino.py; TensorRT's needs a GPU."""
    pipe = load_pipeline(SHIPPED, providers=("CPUExecutionProvider",), engine_cache_dir=tmp_path / "engines")
    assert pipe.engine.precision == "int8"
    assert not (tmp_path / "engines").exists()


def test_an_engine_runs_a_blank_tile_before_serving_on_gpu_providers_and_elsewhere_when_asked(
    tiny_bundle: Path, caplog: pytest.LogCaptureFixture
):
    """On CUDA the first run of a shape is slow (cuDNN chooses its algorithms: 434 against
    48-51 ms a frame on an H200), so GPU engines take it at load. The CPU provider has no
    such cost and starts without it, unless asked."""
    from hades_perception.inference.engine import OnnxRuntimeEngine

    model = tiny_bundle / "model.onnx"
    with caplog.at_level(logging.INFO, logger="hades_perception.inference.engine"):
        OnnxRuntimeEngine(model, "image", (CPU,), tile=64)
        assert "warmed up" not in caplog.text
        engine = OnnxRuntimeEngine(model, "image", (CPU,), tile=64, warm_up=True)
    assert "warmed up on a blank 64 px tile" in caplog.text
    assert engine.warm_up(64) > 0
