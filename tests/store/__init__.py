"""The model store against a real Azurite: publishing, channels, signatures, cut-off
transfers, a store that is down, least-privilege SAS tokens and secrets kept out of output."""
