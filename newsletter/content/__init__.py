"""Feed to articles: fetching feeds, reading and sanitizing them, storing their articles."""
