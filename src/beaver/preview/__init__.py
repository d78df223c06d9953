"""``beaver preview``: browse and correct a prepared dataset in a local web page."""
