"""Performance benchmarks of the token service against the local stack (`make bench`).

Every figure is a ratio measured in one run: the service's cost next to the cost of the bare
Azure SDK call it wraps, on the same machine at the same moment, so the figures travel between
machines better than absolute milliseconds would. See bench/RESULTS.md for the last run.
"""
