"""The package version: one place, read by the build and by `pulsed --version`."""

__version__ = "0.1.0"
