"""Recipes for the starter models the package ships: the corpus of `../shared/data`, each fold of a
leave-one-source-out table, and the final model trained on every source."""
