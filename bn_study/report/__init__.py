"""``python -m bn_study.report <experiment…>``: a study's report (figures, tables, verdicts) from MLflow.

Modules, in the order data flows: ``spec`` (the experiment file's ``report:`` section: claims,
figures, published numbers), ``collect`` (MLflow → per-run records and conditions), ``stats``
(intervals and the verdict rule), ``claims`` (claims checked against conditions), ``figures``
(matplotlib), ``render`` (markdown), ``build`` (one experiment end to end).
"""
