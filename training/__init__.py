"""Training and evaluation of the face classifier, on top of ``pipeline`` (which never imports this package).

``deepfakestream train`` is ``training.cli_train`` over ``training.train``; ``deepfakestream
evaluate`` is ``training.cli_evaluate`` over ``training.evaluate``. Importing the package loads
nothing: each module is imported where it is needed, so the commands' ``--help`` stays fast.
"""
