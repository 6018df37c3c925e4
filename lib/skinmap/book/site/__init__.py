"""The fallback book renderer: Quarto's notebook conventions without Quarto.

``cells`` (``#|`` options, tags, which outputs show), ``assemble`` (a notebook as pandoc Markdown,
with figures, tables, equations and sections numbered), ``pandoc`` (pandoc + citeproc + the Lua
cross-reference filter), ``search`` (the offline lunr index) and ``build`` (the pages).
"""
