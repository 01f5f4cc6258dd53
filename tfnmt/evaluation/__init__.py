"""Measurement: speed benchmarks, time breakdowns, analyses, tfnmt beside CTranslate2."""
