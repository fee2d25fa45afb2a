"""storagectl: command-line client of the Storage & Backup Platform's REST API.

Run it as `python -m storagectl` from the checkout. It talks HTTP only (requests, click,
rich) and imports no Django, so it runs on any machine that can reach the API.
"""
