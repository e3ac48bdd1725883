"""What every step shares: settings, errors, the clock, the database, templates, small helpers."""
