"""A local Azure Functions host for Python v2-model apps.

Azure Functions Core Tools cannot be installed on every machine, yet the app, the
browser tests and the benchmarks all need the app served the way the Functions host
serves it: same route templates and prefix, same request/response objects, same
admin endpoint for firing timers, one event loop for the life of the process.
This package does exactly that and nothing more (no auth keys, no output bindings
other than HTTP, no CORS: locally those are either disabled by Core Tools or handled
by the Static Web Apps CLI in front).

Run it with ``python -m devstack.funchost --app-dir DIR``.
"""
