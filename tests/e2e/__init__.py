"""End-to-end checks through a real browser against the running local stack."""
