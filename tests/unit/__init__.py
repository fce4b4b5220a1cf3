"""Pure specs: no server, no built tool; `pytest tests/unit` is the seconds-long loop."""
