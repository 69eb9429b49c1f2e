"""The HTTP API (`hades-perception serve`): an adapter over the same ServingSlot, model
source and store client as the ROS node, for consumers that are not ROS nodes (lab
software, notebooks, people). docs/api.md says how to run and call it.

  settings.py        the server's settings (the node's model parameters, HTTP limits)
  keys.py            API keys: created, listed, revoked (the CLI), verified (the server)
  auth.py            bearer key + scope + rate limit, as a FastAPI dependency
  limits.py          request body size and per-key rate
  uploads.py         upload -> image: header checks before any decode
  archives.py        zip uploads read with caps: sizes, member count, names that climb
  errors.py          one JSON shape for every error
  jobs.py            jobs: records, folders, the two lanes (predict, train), cancel, pruning
  batch.py           a batch of images as a job: staged, then predicted one by one
  train_jobs.py      hades-train runs as jobs: argument allow-list, path references, MLflow run
  datasets.py        labelled data uploads: Hades layout, validated item by item, kept
  served_drift.py    drift of what this server predicted, a window per served version
  routes_predict.py  POST /v1/predict
  routes_jobs.py     POST /v1/predict/batch, /v1/jobs...: start, status, log, cancel
  routes_datasets.py /v1/datasets...: upload, list, delete
  routes_models.py   /v1/models...: versions, channels, promote, rollback
  routes_monitoring.py /v1/monitoring/drift and /reports
  routes_oip.py      Open Inference Protocol v2 health and metadata
  app.py             the application and the uvicorn server

Needs the `api` extra (FastAPI, uvicorn, python-multipart, Pillow), except keys.py and
settings.py, which the CLI uses without it.
"""
