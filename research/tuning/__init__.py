"""Optuna studies around ``train(cfg)``: the study and its workers (``search``), the search space
(``space``) and where a study lives (``storage``: a journal file or a database).
"""
