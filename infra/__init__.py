"""Triple-LLM Spaces toolkit: declare, render, provision, smoke, promote and roll back.

One module per concern (see DESIGN.md); `tasks.py` and `infra/__main__.py` stay thin.
"""
