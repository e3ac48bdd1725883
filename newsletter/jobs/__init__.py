"""The job that runs by itself: its steps, its record of runs, its lock and its scheduler."""
