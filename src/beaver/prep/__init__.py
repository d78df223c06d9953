"""`beaver prep`: shot classification, concepts from captions, the training dataset."""
