"""The local stand-ins for Azure used by `make dev` and the tests; never deployed."""
