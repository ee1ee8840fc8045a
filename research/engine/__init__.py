"""Training and evaluation on feature files: ``train(cfg)``, ``evaluate(cfg)``, TTA, ensemble members,
checkpoints, metrics, per-video predictions, and grouped cross-validation built from them.
"""
