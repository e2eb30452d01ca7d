"""Figures, the report and the `stingy reproduce` main job.

Every figure is drawn by one function from result files (never by re-running an experiment);
``figures.draw`` lists them, ``figures.report`` writes REPORT.md and ``figures.reproduce`` runs
the whole pipeline stage by stage, reusing finished stages.
"""
