"""Data in: the inputs a collection offers (``inputs``: video folders, the seed's ``processed_data.pt``),
the feature files as training data (``dataset``: the torch ``Dataset``, the train/val/test splits), their
uncompressed training copies (``copies``: keyed on content, kept under a budget, cleaned), and splitting
(``splits``: groups, grouped stratified folds, validation carved by group), each in one home.
"""
