"""One module per panel of the main screen, plus the plot widget they share."""
