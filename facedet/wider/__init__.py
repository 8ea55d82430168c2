"""WIDER FACE: the data set layout, the standard Easy/Medium/Hard evaluation, the paper's test
protocol and a small generated sample set.

Submodules are imported on demand; the evaluation path (``evaluation``, ``ground_truth``,
``submission``, ``submission_reader``, ``curves``) never imports torch.
"""
