"""Evaluation: did the model learn? Loss and perplexity, answer metrics (exact match, F1, ROUGE-L),
the memorisation check, and probe questions answered during training.
"""
