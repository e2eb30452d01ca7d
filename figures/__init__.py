"""Figures, the report and the `stingy reproduce` main job.

Every figure is drawn by one function from result files (never by re-running an experiment);
``stingy.figures.draw`` lists them, ``stingy.figures.report`` writes REPORT.md and ``stingy.figures.reproduce`` runs
the whole pipeline stage by stage, reusing finished stages.
"""
