"""The public pages: sign up, confirm, unsubscribe and preferences, all in Dutch."""
