"""nlp: the spaCy entity linker that maps text spans to KG entities (issue: the linker)."""
