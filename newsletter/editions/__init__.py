"""Articles to an edition, and an edition to composed mail: drafts, review, composition, archive."""
