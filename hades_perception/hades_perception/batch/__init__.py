"""Re-processing plate archives beyond one machine: `hades-perception batch` (run.py) on
Ray Data, or as an Azure ML parallel job (azure.py). Ray is the optional extra `batch`;
nothing here is imported by the node or the API."""
