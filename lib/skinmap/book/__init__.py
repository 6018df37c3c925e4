"""The book machinery: chapter list, parameters, runner, cache, provenance, renderers."""
