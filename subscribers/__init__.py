"""The audience: subscribers, double opt-in, consent log, suppression and bounces."""
