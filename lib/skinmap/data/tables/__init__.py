"""Harmonisation tables shipped as package data (edit the CSV/YAML files, not code):
``registry.csv``, ``icd10_labels.csv``, ``body_sites.csv``, ``age_rules.yml``, ``countries.csv``,
``demographic_baselines.csv``. Read through :mod:`skinmap.data.harmonize`."""
