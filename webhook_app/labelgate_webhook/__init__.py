"""labelgate webhook receiver (Flask)."""
