"""Figures and the report, drawn from result files only.

Every figure is drawn by one function from result files (never by re-running an experiment);
``stingy.figures.draw`` lists them and ``stingy.figures.report`` writes REPORT.md. The whole
study, stage by stage (`stingy reproduce`), is run by :mod:`stingy.pipeline`.
"""
