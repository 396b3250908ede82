"""The command-line programs (console scripts ``l2l-*``; ``python -m train.X`` in a checkout)."""
