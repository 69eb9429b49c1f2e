"""The model-bundle contract shared by training (which writes bundles) and serving
(which reads them): the manifest and its checksums, the golden sample, signatures."""
