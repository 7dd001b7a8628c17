"""Reports people look at: the report bundle and its self-contained HTML page."""
