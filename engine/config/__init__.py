"""The run configuration: schema, knobs, files and overrides. Imports no torch."""
