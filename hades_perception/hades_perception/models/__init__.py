"""Where models come from: blob backends (local folder, Azure Blob Storage), the
versioned store with its channels, the local cache, the follower that turns a
channel into servable pipelines, and the `hades-model` command line."""
