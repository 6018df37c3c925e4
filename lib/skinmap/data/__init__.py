"""The data layer: catalog schema, official-format loaders, harmonisation tables, captions and the
synthetic atlas. Entry points: :func:`skinmap.data.catalog.build_catalog` and
:func:`skinmap.data.synthetic.generate_synthetic_atlas`."""
