"""`hades-perception`: the serving side's command line.

predict <image or folder> --model <bundle> --out DIR [--rsml] [--overlay]
    per image: DIR/<stem>_<class>_mask.png (uint8 0/255, image size), DIR/<stem>.json
    (landmarks, plants with traits, certainty) and with --rsml DIR/<stem>.rsml
serve [--host 127.0.0.1] [--port 8000] [--bundle DIR | --store URL --model NAME --channel C]
      [--keys FILE] [--max-upload-mb N] [--rate-limit N/min] [--cors-origin URL]
      [--work-dir DIR] [--data-dir DIR ...] [--keep-jobs N] [--metrics-port P]
    the HTTP API (docs/api.md; needs the api extra): predict (one image or a batch),
    models, promote and rollback, jobs, datasets, monitoring, Open Inference Protocol v2
    health and metadata
keys create NAME --scopes read,predict,train,promote | keys list | keys revoke NAME [--keys FILE]
    API keys: printed once at creation, stored as sha256 in $HADES_DATA_DIR/api-keys.json
batch <folder or blob prefix> --out <folder or blob prefix> --model <bundle> [--workers N] [--address RAY]
    an archive through the same pipeline on Ray Data (the batch extra), resumable:
    results/<name>.json per plate, failures.csv, traits.csv; --azure: an Azure ML parallel job
Where the ROS 2 package (hades_perception_ros) is installed, it adds its commands:
run (the node, as the launch file starts it), bag make, replay.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

import cv2

from hades_perception.inference.engine import DEFAULT_PROVIDERS, PRECISIONS
from hades_perception.inference.image_files import IMAGE_SUFFIXES, read_image

PROG = "hades-perception"
PRECISION_HELP = (
    "auto (default): the bundle's int8 variant where it passed its accuracy gate, on the CPU and OpenVINO "
    "providers; fp16 on TensorRT; else fp32 (docs/engines.md)"
)
log = logging.getLogger(PROG)


def _predict(args: argparse.Namespace) -> int:
    from hades_perception.inference.landmarks import PRIMARY
    from hades_perception.inference.loading import load_checked
    from hades_perception.inference.prediction_files import write_prediction

    src = Path(args.input)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif src.is_file():
        files = [src]
    else:
        raise FileNotFoundError(f"{src}: no such image or folder")
    if not files:
        raise ValueError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)})")
    pipe = load_checked(
        Path(args.model), tuple(args.providers.split(",")), precision=args.precision, px_per_mm=args.px_per_mm
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in files:
        try:
            image = read_image(path)
            pred = pipe(image)
        except ValueError as exc:
            log.error("%s: %s", path, exc)
            failed += 1
            continue
        write_prediction(out, path.stem, pred)
        if args.rsml:
            from hades_perception.inference.rsml import write_rsml

            write_rsml(out / f"{path.stem}.rsml", pred.plants, path.stem)
        if args.overlay:
            from hades_perception.inference.overlay import prediction_picture
            from hades_perception.inference.pipeline import as_rgb8

            cv2.imwrite(str(out / f"{path.stem}_overlay.png"), prediction_picture(as_rgb8(image), pred))
        tips = sum(lm.kind == PRIMARY for lm in pred.landmarks)
        log.info(
            "%s: %d primary tips, %d landmarks, %.0f ms", path.name, tips, len(pred.landmarks), pred.timing_ms["total"]
        )
    print(f"wrote predictions for {len(files) - failed} of {len(files)} image(s) to {out}")
    return 1 if failed else 0


def _serve(args: argparse.Namespace) -> int:
    from hades_perception.api.keys import default_keys_file
    from hades_perception.api.settings import MODEL_DEFAULTS, ServeSettings, default_work_dir, parse_rate

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart", "PIL") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(
            f"the API needs the api extra ({', '.join(missing)} missing): pip install 'hades_perception[api]'"
        )
    from hades_perception.api.app import serve

    model: dict[str, object] = {
        "model_bundle_path": args.bundle,
        "store_url": args.store or "",
        "model_name": args.model or "",
        "channel": args.channel,
        "poll_period": args.poll_period,
        "cache_dir": args.cache_dir or "",
        "trusted_keys_dir": args.trusted_keys_dir or "",
        "latency_budget_ms": args.latency_budget_ms,
        "execution_providers": args.providers.split(","),
        "intra_op_threads": args.threads,
        "precision": args.precision,
        "px_per_mm": args.px_per_mm or MODEL_DEFAULTS["px_per_mm"],
    }
    settings = ServeSettings(
        host=args.host,
        port=args.port,
        keys_file=Path(args.keys) if args.keys else default_keys_file(),
        max_upload_mb=args.max_upload_mb,
        rate_per_min=parse_rate(args.rate_limit),
        cors_origins=tuple(args.cors_origin or ()),
        model=model,
        work_dir=Path(args.work_dir) if args.work_dir else default_work_dir(),
        data_dirs=tuple(Path(d) for d in args.data_dir or ()),
        keep_jobs=args.keep_jobs,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        live_namespace=args.live_namespace,
        azure_ml=args.azure_ml,
    )
    return serve(settings)


def _keys(args: argparse.Namespace) -> int:
    from hades_perception.api.keys import KeyFile, default_keys_file, parse_scopes

    keys = KeyFile(Path(args.keys) if args.keys else default_keys_file())
    if args.keys_command == "create":
        scopes = parse_scopes(args.scopes)
        key = keys.create(args.name, scopes)
        print(f"created key {args.name!r} (scopes: {','.join(scopes)}) in {keys.path}", file=sys.stderr)
        print(key)
        print("store it now: it is not shown again (the file keeps only its sha256)", file=sys.stderr)
    elif args.keys_command == "list":
        rows = keys.stored()
        for k in rows:
            print(f"{k.name:<24} {','.join(k.scopes):<28} {k.created_at}")
        if not rows:
            print(f"no keys in {keys.path}", file=sys.stderr)
    else:
        keys.revoke(args.name)
        print(f"revoked key {args.name!r} in {keys.path}; a running server refuses it from its next request")
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from hades_perception.api.settings import (
        DEFAULT_HOST,
        DEFAULT_KEEP_JOBS,
        DEFAULT_MAX_UPLOAD_MB,
        DEFAULT_PORT,
        DEFAULT_RATE_LIMIT,
        LIVE_NAMESPACE,
    )
    from hades_perception.api.settings import MODEL_DEFAULTS as D

    p = sub.add_parser("serve", help="the HTTP API (FastAPI on uvicorn; docs/api.md)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument(
        "--bundle",
        default=D["model_bundle_path"],
        help="model bundle folder to serve; with --store, served while the channel cannot be "
        f"(default {D['model_bundle_path']})",
    )
    p.add_argument("--store", help="model store to follow (folder, file://, azure://, https blob URL)")
    p.add_argument("--model", help="model to follow in the store (default: the bundle's name)")
    p.add_argument("--channel", default=D["channel"], help=f"store channel to follow (default {D['channel']})")
    p.add_argument(
        "--poll-period", type=float, default=D["poll_period"], help="seconds between reads of the channel pointer"
    )
    p.add_argument("--cache-dir", help="local cache of store versions (default $HADES_DATA_DIR/model-cache)")
    p.add_argument("--trusted-keys-dir", help="folder of trusted ed25519 *.pub keys: serve signed bundles only")
    p.add_argument(
        "--latency-budget-ms",
        type=float,
        default=D["latency_budget_ms"],
        help="golden-sample latency a new version must meet; 0: 10x its export latency",
    )
    p.add_argument(
        "--providers",
        default=",".join(D["execution_providers"]),
        help="ONNX Runtime execution providers by preference (default: TensorRT, CUDA, OpenVINO, CPU)",
    )
    p.add_argument("--threads", type=int, default=D["intra_op_threads"], help="ONNX Runtime threads; 0: all cores")
    p.add_argument("--precision", default=D["precision"], choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--px-per-mm", type=float, default=None, help="calibration; default: measured from the dish")
    p.add_argument("--keys", help="API keys file (default $HADES_DATA_DIR/api-keys.json)")
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest request body (default {DEFAULT_MAX_UPLOAD_MB:g} MB)",
    )
    p.add_argument(
        "--rate-limit",
        default=DEFAULT_RATE_LIMIT,
        help=f"requests per key: N/s, N/min or N/hour, or off (default {DEFAULT_RATE_LIMIT})",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser origin allowed to call the API (repeatable); default: none, CORS closed",
    )
    p.add_argument("--work-dir", help="jobs and uploaded datasets (default $HADES_DATA_DIR/api)")
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DIR",
        help="a folder jobs may read by absolute path, e.g. a fixed gate set (repeatable); default: none",
    )
    p.add_argument(
        "--keep-jobs",
        type=int,
        default=DEFAULT_KEEP_JOBS,
        help=f"finished jobs kept with their folders, the oldest deleted first (default {DEFAULT_KEEP_JOBS})",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="a Prometheus endpoint on this port (default 0: off; docs/monitoring.md)",
    )
    p.add_argument("--metrics-host", default=DEFAULT_HOST, help=f"its address (default {DEFAULT_HOST})")
    p.add_argument(
        "--live-namespace",
        default=LIVE_NAMESPACE,
        help=f"a running node's namespace, whose latest plants the web app's live page shows when ROS 2 is "
        f"present (default {LIVE_NAMESPACE}; '' turns it off)",
    )
    p.add_argument(
        "--azure-ml",
        action="store_true",
        help="let azure_train and azure_pipeline jobs submit to the Azure ML workspace named by "
        "AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE (docs/azure.md)",
    )
    p.set_defaults(func=_serve)


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from hades_perception.api.keys import SCOPES

    keys_file = argparse.ArgumentParser(add_help=False)
    keys_file.add_argument("--keys", help="API keys file (default $HADES_DATA_DIR/api-keys.json)")
    p = sub.add_parser("keys", help="API keys for `serve`: create (printed once), list, revoke")
    ks = p.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", parents=[keys_file], help="create a key; it is printed once")
    c.add_argument("name", help="who or what uses it (recorded as `by` when it promotes)")
    c.add_argument("--scopes", required=True, help=f"comma-separated, of {','.join(SCOPES)}")
    ks.add_parser("list", parents=[keys_file], help="names, scopes and creation times (never keys)")
    r = ks.add_parser("revoke", parents=[keys_file], help="remove a key; servers refuse it at once")
    r.add_argument("name")
    p.set_defaults(func=_keys)


def _batch(args: argparse.Namespace) -> int:
    import os

    from hades_perception.batch.worker import Job

    workers = max(1, args.workers)
    threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    job = Job(
        str(Path(args.model).resolve()),
        args.input,
        args.out,
        threads,
        args.masks,
        tuple(args.providers.split(",")),
        args.precision,
    )
    if args.azure:
        from hades_perception.batch.azure import AzureBatch, submit_parallel_job

        spec = AzureBatch(
            compute=args.compute,
            input_path=args.input,
            output_path=args.out,
            model_path=args.model,
            datastore=args.datastore,
            instances=args.instances,
            processes_per_instance=workers,
            mini_batch_size=args.mini_batch_size,
            threads=threads,
        )
        path = submit_parallel_job(spec, Path(args.spec_out), dry_run=args.dry_run)
        print(f"Azure ML parallel job spec: {path}" + (" (dry run: nothing submitted)" if args.dry_run else ""))
        return 0
    from hades_perception.batch.run import run_batch

    s = run_batch(job, workers=workers, address=args.address, progress=not args.no_progress)
    print(
        f"{s.images} images: {s.skipped} done before, {s.predicted} predicted, {s.failed} failed "
        f"({s.images_per_s:.2f} images/s with {s.workers} worker(s)); results/, traits.csv, failures.csv in {args.out}"
    )
    return 1 if s.failed else 0


def _add_batch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "batch",
        help="re-process a plate archive (folder or blob prefix) on Ray Data, resumable; a CSV of every plant's traits",
    )
    p.add_argument("input", help="a folder of images (sub-folders too) or a blob prefix: azure://container/prefix")
    p.add_argument("--out", required=True, help="a folder or blob prefix: results/, traits.csv, failures.csv")
    p.add_argument("--model", required=True, help="model bundle folder")
    p.add_argument("--workers", type=int, default=1, help="pipelines running at once (Ray actors; default 1)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per worker (default: cores / workers)")
    p.add_argument("--address", default=None, help="a Ray cluster (ray://HOST:10001 or auto); default: a local Ray")
    p.add_argument("--masks", action="store_true", help="also write masks/<name>_<class>_mask.png")
    p.add_argument("--providers", default="CPUExecutionProvider", help="ONNX Runtime execution providers")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    az = p.add_argument_group("Azure ML parallel job (--azure): input, --out and --model are datastore paths")
    az.add_argument("--azure", action="store_true", help="submit as an Azure ML parallel job instead of Ray")
    az.add_argument("--compute", default="cpu-cluster", help="compute cluster (default cpu-cluster)")
    az.add_argument("--datastore", default="workspaceblobstore", help="datastore of the three paths")
    az.add_argument("--instances", type=int, default=2, help="nodes (default 2)")
    az.add_argument("--mini-batch-size", type=int, default=10, help="images per mini-batch (default 10)")
    az.add_argument("--spec-out", default="var/azure/batch.yaml", help="where the job spec is written")
    az.add_argument("--dry-run", action="store_true", help="write the job spec and stop; contacts nothing")
    p.set_defaults(func=_batch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="run a model bundle on image files")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--model", required=True, help="model bundle folder (manifest.json, model.onnx)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--providers",
        default=",".join(DEFAULT_PROVIDERS),
        help="ONNX Runtime execution providers by preference (default: TensorRT, CUDA, OpenVINO, CPU)",
    )
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument(
        "--px-per-mm", type=float, default=None, help="calibration; default: measured from the dish (120 mm agar width)"
    )
    p.add_argument(
        "--overlay",
        action="store_true",
        help="also write <stem>_overlay.png: masks and landmarks beside the certainty map",
    )
    p.add_argument("--rsml", action="store_true", help="also write <stem>.rsml: each plant's roots as polylines")
    p.set_defaults(func=_predict)
    _add_serve(sub)
    _add_keys(sub)
    _add_batch(sub)

    try:  # run, bag and replay need ROS 2: present where the ROS package is installed
        from hades_perception_ros.cli import add_commands
    except ImportError as exc:
        log.debug("ROS commands not available: %s", exc)
    else:
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
