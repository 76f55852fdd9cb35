"""fusion: text encoder + graph encoder + fusion head, training, evaluation, explanations."""
