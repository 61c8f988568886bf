"""The stacked teacher (`model.kind: stack`): frozen representations, cross-fitted base learners, a meta-model.

    config.py            the `stack` section of a teacher config
    representations.py   mean-pooled backbone states, cached by text digest and backbone checksum (Ray Data)
    learners.py          the base learners and what they read (`Rows`)
    fit.py               folds, cross-fitting, forward selection, the meta-model
    model.py             the saved model folder and its scorer
    job.py               the teacher stage for a stack
"""
