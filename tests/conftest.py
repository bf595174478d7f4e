# Fixtures live in one module per concern; this file only wires them in.
pytest_plugins = [
    "support.fixtures_runtime",
    "support.fixtures_http",
    "support.fixtures_servers",
    "support.fixtures_s3",
]
