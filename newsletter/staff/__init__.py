"""The staff: their accounts and login sessions, and what their dashboard shows."""
