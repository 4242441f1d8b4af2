"""The ACS trusted token service: the domain behind function_app.py's functions."""
