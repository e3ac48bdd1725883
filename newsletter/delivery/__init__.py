"""Composed mail to SMTP: the outbox, its snapshot of recipients, the engine, workers."""
