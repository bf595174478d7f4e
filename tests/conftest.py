# Fixtures live in one module per concern; this file only wires them in.
pytest_plugins = [
    "fixtures_runtime",
    "fixtures_http",
    "fixtures_servers",
]
