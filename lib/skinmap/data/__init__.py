"""The data layer: from dataset folders to one harmonised catalog, and the synthetic atlas.

Entry points: :func:`skinmap.data.catalog.build_catalog` and
:func:`skinmap.data.synthetic.generate_synthetic_atlas`.

- ``schema``: the catalog's columns and dtypes, the Fitzpatrick groups (``FST_GROUPS``, ``fst_group``);
- ``loaders/``: one reader per official format, plus the generic ``dataset.yml`` layout;
- ``images``: header-only image checks and the decompression-bomb cap; ``IMAGE_SUFFIXES``;
- ``harmonize`` (ages, sex, skin type, body site, origin), ``icd10`` (labels -> ICD-10),
  ``registry`` (the datasets' reference facts and the published baselines), ``tables/`` (the data files);
- ``issues``: bad-input bookkeeping (``IssueLog``) and ``DataInputError``;
- ``catalog``: discovery, loading and identifier de-duplication; ``captions``; ``describe`` and
  ``demographics`` (tables for the data and demographics chapters); ``dermamnist``;
- ``synthetic/``: the seeded synthetic atlas with planted structure.

Imports stay inside ``skinmap.data`` (plus ``skinmap.io``/``skinmap.runs`` for writing exports); never
``skinmap.book``.
"""
