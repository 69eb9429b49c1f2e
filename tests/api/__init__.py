"""The HTTP API against real `hades-perception serve` processes on loopback: predict,
bad input and limits, keys and scopes, models and channel moves, hot swaps, the Open
Inference Protocol routes and property-based tests of the OpenAPI schema."""
