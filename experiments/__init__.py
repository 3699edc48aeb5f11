"""The checks (`test_*.py`), shared by every strategy, and the runner that puts each strategy through them."""
