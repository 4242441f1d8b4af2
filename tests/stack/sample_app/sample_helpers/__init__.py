"""A package of the sample app itself: importable only if the app folder is on sys.path."""

ORIGIN = "sample_helpers"
